"""Times and durations formatted for people in the console (exports keep the full values)."""

import re
from datetime import UTC, datetime

import pytest

from portal.admin.formatting import human_duration, human_time
from tenants.fleet.options import RunOptions
from tenants.fleet.single import move_tenant
from tests.console_support import Console


@pytest.mark.parametrize("ms,text", [(None, ""), (12.4, "12 ms"), (4200, "4.2 s"), (185_000, "3 min 5 s"),
                                     (7_800_000, "2 h 10 min")])
def test_human_duration(ms, text) -> None:  # type: ignore[no-untyped-def]
    assert human_duration(ms) == text


def test_human_time_is_utc_to_the_minute() -> None:
    assert human_time(datetime(2026, 11, 30, 11, 49, 21, 123456, tzinfo=UTC)) == "2026-11-30 11:49 UTC"
    assert human_time(datetime(2026, 11, 30, 11, 49, 21)) == "2026-11-30 11:49 UTC"


def test_console_lists_show_readable_times_and_durations(console: Console, root) -> None:
    move_tenant(console.tenancy, console.b, "0002", downgrade=True, options=RunOptions(allow_destructive=True))
    products = root.get(f"/t/{console.a}/admin/product/").get_data(as_text=True)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", products)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}", products)  # no microseconds
    results = root.get("/admin/results/").get_data(as_text=True)
    assert re.search(r">\s*\d+(\.\d)? (ms|s)\s*<", results)
    exported = root.get(f"/t/{console.a}/admin/product/export/csv/").get_data(as_text=True)
    assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", exported)
