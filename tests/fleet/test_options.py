"""Run options are frozen: one options object serves any number of runs, and each run behaves the same."""

from dataclasses import FrozenInstanceError

import pytest

from tenants.fleet.options import RunOptions
from tenants.fleet.runs import upgrade_tenants
from tenants.migrate.selection import Selection
from tests.safety.test_gate import PLAIN_INDEX, fleet


def test_options_cannot_be_changed_by_a_run_or_a_caller():
    options = RunOptions(jobs=2)
    with pytest.raises(FrozenInstanceError):
        options.jobs = 3  # type: ignore[misc]


def test_one_options_object_used_three_times_gives_three_identical_runs(settings, tmp_path):
    tenancy, _env = fleet(settings, tmp_path, PLAIN_INDEX)  # 0004 builds an index without CONCURRENTLY: a warning
    calls: list[int] = []

    def counting_check(tenancy, plan, options) -> list[str]:
        calls.append(plan.count("pending"))
        return ["checked"]

    options = RunOptions(dry_run=True, plan_checks=(counting_check,))
    before = RunOptions(dry_run=True, plan_checks=(counting_check,))
    reports = [upgrade_tenants(tenancy, Selection(), "head", options) for _ in range(3)]
    assert calls == [2, 2, 2], "each run calls each check once"
    notes = [report.notes for report in reports]
    assert notes[0] == notes[1] == notes[2]
    assert notes[0].count("checked") == 1
    # The lint gate runs once per run too: its warning (PostgreSQL only: SQLite has no concurrent builds) once.
    expected = 1 if settings.control_url.startswith("postgresql") else 0
    assert sum(note.startswith("migration hazard: 0004") for note in notes[0]) == expected, notes[0]
    assert options == before
    tenancy.close()

