"""The spool a run keeps its per-tenant records in: order, rereading, and the move to disk past its bound."""

import errno
import pickle
from types import SimpleNamespace

import pytest

from tenants.core import spool
from tenants.core.errors import SpoolFailed
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


def test_a_failed_write_keeps_its_records_and_leaves_no_part_page_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool, "PAGE", 2)
    failing = [True]

    def dump(records, file, protocol) -> None:  # type: ignore[no-untyped-def]
        if len(records) == 2 and records[0] == 2 and failing[0]:
            failing[0] = False
            file.write(pickle.dumps(records, protocol)[:5])  # a part of the page reached the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        pickle.dump(records, file, protocol)

    monkeypatch.setattr(spool, "pickle", SimpleNamespace(dump=dump, load=pickle.load,
                                                         HIGHEST_PROTOCOL=pickle.HIGHEST_PROTOCOL))
    records = Spool([0, 1, 2])
    with pytest.raises(SpoolFailed, match="No space left on device; point TMPDIR at a folder with room"):
        records.append(3)
    records.append(4)  # room again: the kept records go out with it
    assert list(records) == [0, 1, 2, 3, 4]
