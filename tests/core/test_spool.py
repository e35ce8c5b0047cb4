"""The spool a run keeps its per-tenant records in: order, rereading, and the move to disk past its bound."""

import pytest

from tenants.core import spool
from tenants.core.ledger import TenantResult
from tenants.core.spool import Spool


def test_records_come_back_in_order_as_often_as_asked() -> None:
    records = Spool(range(1000))
    assert len(records) == 1000 and bool(records)
    assert list(records) == list(range(1000)) == list(records)
    records.append(1000)
    assert list(records)[-2:] == [999, 1000] and len(records) == 1001
    assert not Spool() and list(Spool()) == []


def test_past_its_bound_a_spool_moves_to_a_temporary_file_and_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool, "IN_MEMORY", 4096)
    results = [TenantResult(f"tenant{i:05d}", "ok", "0003", "0004", float(i), None, "applied 0004")
               for i in range(3000)]
    records = Spool(results)
    assert records._file._rolled  # type: ignore[attr-defined]  # on disk, not in memory
    assert list(records) == results


def test_two_readers_and_an_append_meanwhile_each_see_every_record() -> None:
    records = Spool(range(600))
    first, second = iter(records), iter(records)
    assert [next(first) for _ in range(300)] == list(range(300))
    records.extend(range(600, 700))  # writes a page while `first` is part way
    assert list(second) == list(range(700))
    assert list(first) == list(range(300, 700))
