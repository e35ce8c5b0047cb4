"""Runs over a fleet larger than a plan page (settings.plan_page): the same outcomes, a page held at a time.

Pages of 2 or 3 tenants here stand for the 1,000 of a real fleet: every run below crosses
several page boundaries, in the plan, in the queue of the pool and in the report.
"""

import dataclasses
import errno
import gc
import json
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, text

from tenants.cli.output import Presenter
from tenants.core import spool
from tenants.core.control_schema import fleet_locks, migration_runs
from tenants.core.errors import SpoolFailed
from tenants.core.ledger import TenantResult, ledger_versions
from tenants.core.tenancy import Tenancy
from tenants.fleet.lock import FleetLock
from tenants.fleet.options import RunOptions
from tenants.fleet.recorder import ResultBuffer
from tenants.fleet.runs import upgrade_tenants
from tenants.migrate.overview import version_rows
from tenants.migrate.plan import TenantPlan
from tenants.migrate.selection import Selection
from tests.conftest import run_manage
from tests.fleet.test_runner import CONSTRAINT_CHAIN
from tests.fleet_support import live, make_tenants, rows, with_chain, write_chain

GOOD = [f"t{i:02d}" for i in range(7)]


@pytest.fixture
def paged(settings, tmp_path: Path, tenancy: Tenancy) -> Iterator:  # type: ignore[no-untyped-def]
    """Return a factory: a Tenancy over CONSTRAINT_CHAIN that plans `page` tenants at a time (closed after)."""
    made: list[Tenancy] = []

    def make(page: int) -> Tenancy:
        chain = write_chain(tmp_path, CONSTRAINT_CHAIN, f"chain{len(made)}")
        made.append(Tenancy(dataclasses.replace(with_chain(settings, chain), plan_page=page)))
        return made[-1]

    yield make
    for t in made:
        t.close()


def json_report(report, capsys: pytest.CaptureFixture) -> dict:  # type: ignore[no-untyped-def]
    """Return the JSON report the CLI prints (written in pieces), parsed."""
    capsys.readouterr()
    Presenter(as_json=True).finish(report)
    return json.loads(capsys.readouterr().out)


def test_a_run_over_many_pages_moves_every_tenant_and_reports_each_once(tenancy: Tenancy, paged, capsys) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["aaa_bad"], stock=5000)
    make_tenants(tenancy, [*GOOD, "sleepy"])
    tenancy.registry.set_status("sleepy", "suspended", "unpaid")
    for slug in ["aaa_bad", *GOOD]:  # the association table too
        with tenancy.storage(slug).begin() as conn:
            conn.execute(text("INSERT INTO users_roles (user_id, role_id) VALUES (1, 1)"))
    fleet = paged(2)
    report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=2))
    assert report.plan.selected == 8 and report.plan.count("pending") == 8 and len(report.plan.skipped) == 1
    counts = report.counts
    assert (counts["ok"], counts["failed"], counts["left_out"], counts["not_started"]) == (7, 1, 1, 0)
    assert report.exit_code == 1 and report.status == "failed"
    final = report.final()
    assert sorted(final) == sorted(["aaa_bad", *GOOD]) and final["aaa_bad"].status == "failed"
    assert [live(fleet, slug) for slug in GOOD] == ["0005"] * 7
    assert live(fleet, "aaa_bad") == live(fleet, "sleepy") == "0003"
    # every table's rows are where they were, the failed tenant's included
    for slug in ["aaa_bad", *GOOD]:
        assert rows(fleet, slug, "SELECT count(*) FROM users") == [(1,)]
        assert rows(fleet, slug, "SELECT count(*) FROM roles") == [(1,)]
        assert rows(fleet, slug, "SELECT count(*) FROM users_roles") == [(1,)]
    assert rows(fleet, "aaa_bad", "SELECT stock FROM products") == [(5000,)]
    recorded = ledger_versions(fleet.control_engine)
    assert {slug: recorded[slug] for slug in GOOD} == dict.fromkeys(GOOD, "0005") and recorded["aaa_bad"] == "0003"
    printed = json_report(report, capsys)
    assert printed == report.to_dict()
    assert sorted(r["slug"] for r in printed["results"]) == sorted(["aaa_bad", *GOOD])
    assert printed["left_out"] == [{"slug": "sleepy", "reason": "suspended: name it with --tenant to include it"}]
    # tenant-versions over pages: every tenant once, what each still needs
    listed = {row["slug"]: row["pending"] for row in version_rows(fleet)}
    assert listed == {**dict.fromkeys(GOOD, 0), "aaa_bad": 2, "sleepy": 2}
    # --only-failed over pages picks the one failure; the rest are left out, each once
    again = upgrade_tenants(fleet, Selection(only_failed=True))
    assert again.plan.selected == 1 and [r.slug for r in again.results] == ["aaa_bad"]
    assert sorted(slug for slug, _ in again.plan.skipped) == sorted([*GOOD, "sleepy"])
    # the no-op over pages lists every tenant at target in its report
    noop = upgrade_tenants(fleet, Selection(tenants=tuple(GOOD)))
    assert noop.exit_code == 0 and noop.counts["at_target"] == 7 and not noop.results
    assert sorted(r["slug"] for r in json_report(noop, capsys)["results"]) == GOOD


@pytest.mark.parametrize("jobs", [1, 2])
def test_canary_and_fail_fast_over_pages_name_every_tenant_not_started(tenancy: Tenancy, paged, jobs: int) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["aaa_bad"], stock=5000)
    make_tenants(tenancy, GOOD)
    fleet = paged(2)
    canary = upgrade_tenants(fleet, Selection(), options=RunOptions(canary=3, jobs=jobs))
    assert canary.status == "canary-failed" and canary.exit_code == 1
    assert sorted(r.slug for r in canary.results) == ["aaa_bad", "t00", "t01"]
    assert sorted(canary.not_started) == GOOD[2:]
    assert [live(fleet, slug) for slug in GOOD[2:]] == ["0003"] * 5
    fast = upgrade_tenants(fleet, Selection(), options=RunOptions(fail_fast=True, jobs=1))
    assert fast.exit_code == 1 and [r.slug for r in fast.results] == ["aaa_bad"]
    assert sorted(fast.not_started) == GOOD[2:]  # t00 and t01 are at target from the canary


def test_retry_busy_over_pages_retries_the_busy_tenant_once(tenancy: Tenancy, paged) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, GOOD)
    fleet = paged(3)
    held, release, released = fleet.storage("t04"), threading.Event(), threading.Event()
    locked = threading.Event()

    def hold() -> None:
        with held.begin(exclusive=True):  # another process's hold on the tenant, until its first attempt failed
            locked.set()
            release.wait(30)
        released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(30)

    def on_event(kind: str, payload: object) -> None:
        if kind == "result" and payload[0].slug == "t04":  # type: ignore[index]
            release.set()
            released.wait(30)

    try:
        report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=1, retry_busy=True, lock_timeout=0.3),
                                 on_event=on_event)
    finally:
        release.set()
        holder.join()
    attempts = [r.status for r in report.results if r.slug == "t04"]
    assert attempts == ["busy", "ok"] and report.exit_code == 0 and report.counts["ok"] == 7
    assert report.to_dict()["results"][-1]["slug"] == "t04" and len(report.to_dict()["results"]) == 7
    assert "retrying 1 busy or timed-out tenants once" in report.notes
    assert [live(fleet, slug) for slug in GOOD] == ["0005"] * 7


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_holds_a_few_pages_of_its_tenants_not_the_fleet(tenancy: Tenancy, paged, jobs: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The runner's memory stays flat only if no list of every tenant is kept anywhere: count the
    # plans and results alive while the run goes on, against a fleet ten times a page.
    monkeypatch.setattr(spool, "PAGE", 4)  # the spools write every 4 records
    monkeypatch.setattr(ResultBuffer, "SIZE", 4)  # and the ledger's batches carry 4 results
    # The pool freezes the heap before it forks (fleet.pool): frozen objects are not in gc.get_objects().
    monkeypatch.setattr(gc, "freeze", lambda: None)
    slugs = [f"m{i:02d}" for i in range(40)]
    make_tenants(tenancy, slugs)
    fleet = paged(4)
    alive: list[tuple[int, int]] = []

    def on_event(kind: str, payload: object) -> None:
        if kind == "result":
            objects = gc.get_objects()
            alive.append((sum(isinstance(o, TenantPlan) for o in objects),
                          sum(isinstance(o, TenantResult) for o in objects)))

    report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=jobs), on_event=on_event)
    assert report.exit_code == 0 and report.counts["ok"] == 40 and len(alive) == 40
    plans, results = max(p for p, _ in alive), max(r for _, r in alive)
    # a page queued, a page being read, the batches under way, a spool page, a ledger batch: never 40
    assert plans <= 20 and results <= 12, alive


@pytest.mark.parametrize("page", ["0", "-3", "abc", "2.5", ""])
def test_a_bad_plan_page_is_refused_in_one_line_and_nothing_runs(tenancy: Tenancy, cli_env: dict, page: str) -> None:
    make_tenants(tenancy, ["acme"])
    before = ledger_versions(tenancy.control_engine)
    run = run_manage(["upgrade-all-tenants"], {**cli_env, "PORTAL_PLAN_PAGE": page})
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip().splitlines() == [f"Error: PORTAL_PLAN_PAGE must be a whole number of tenants, "
                                               f"1 or more, not {page!r}" if not page.lstrip("-").isdigit() else
                                               f"Error: PORTAL_PLAN_PAGE must be a whole number of tenants, "
                                               f"1 or more, not {int(page)}"]
    assert ledger_versions(tenancy.control_engine) == before and live(tenancy, "acme") == tenancy.head()


def test_tenant_versions_and_list_tenants_over_pages_list_every_tenant_once(tenancy: Tenancy, cli_env: dict) -> None:
    slugs = [f"v{i}" for i in range(5)]
    make_tenants(tenancy, slugs)
    run = run_manage(["tenant-versions", "--json"], {**cli_env, "PORTAL_PLAN_PAGE": "2"})
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    assert [row["slug"] for row in listed] == slugs and {row["pending"] for row in listed} == {0}
    plain = run_manage(["tenant-versions"], {**cli_env, "PORTAL_PLAN_PAGE": "2"})
    assert plain.returncode == 0 and plain.stdout.splitlines()[-1] == f"head {tenancy.head()}; 5 of 5 tenants at head"
    overview = run_manage(["list-tenants", "--json"], {**cli_env, "PORTAL_PLAN_PAGE": "2"})
    assert overview.returncode == 0, overview.stderr
    assert [(row["slug"], row["at_head"]) for row in json.loads(overview.stdout)] == [(s, True) for s in slugs]


def test_a_full_temporary_folder_stops_the_run_whole_and_the_next_run_finishes(tenancy: Tenancy, paged,  # type: ignore[no-untyped-def]
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # The spools move to disk past their bound: a full TMPDIR there fails a write mid-run.
    make_tenants(tenancy, GOOD)
    fleet = paged(2)
    monkeypatch.setattr(spool, "PAGE", 2)
    writes: list[int] = []

    def dump(records, file, protocol) -> None:  # type: ignore[no-untyped-def]
        writes.append(1)
        if len(writes) > 5:  # the plan's pages written: a result's page is cut short by the full disk
            file.write(pickle.dumps(records, protocol)[:7])
            raise OSError(errno.ENOSPC, "No space left on device")
        pickle.dump(records, file, protocol)

    monkeypatch.setattr(spool, "pickle", SimpleNamespace(dump=dump, load=pickle.load,
                                                         HIGHEST_PROTOCOL=pickle.HIGHEST_PROTOCOL))
    with pytest.raises(SpoolFailed, match="No space left on device; point TMPDIR at a folder with room"):
        upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=1))
    monkeypatch.setattr(spool, "pickle", pickle)
    with fleet.control_engine.connect() as conn:
        last = conn.execute(select(migration_runs.c.status).order_by(migration_runs.c.started_at)).scalars().all()[-1]
        assert last == "aborted"
        assert conn.execute(select(func.count()).select_from(fleet_locks)).scalar() == 0
    moved = [live(fleet, slug) for slug in GOOD]
    assert set(moved) == {"0003", "0005"} and moved.count("0005") >= 1  # each tenant whole, at one end
    for slug in GOOD:
        assert rows(fleet, slug, "SELECT count(*) FROM users") == [(1,)]
    again = upgrade_tenants(fleet, Selection())
    assert again.exit_code == 0 and [live(fleet, slug) for slug in GOOD] == ["0005"] * 7
    assert ledger_versions(fleet.control_engine) == dict.fromkeys(GOOD, "0005")


def test_a_run_that_finds_the_fleet_locked_lists_every_pending_tenant_of_every_page_busy(tenancy: Tenancy,  # type: ignore[no-untyped-def]
                                                                                          paged) -> None:
    make_tenants(tenancy, GOOD)
    fleet = paged(2)
    holder = FleetLock(fleet.control_engine)
    holder.acquire()  # another run under way
    try:
        locked = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=2))
    finally:
        holder.release()
    assert locked.status == "locked" and locked.exit_code == 3
    assert [(r.slug, r.status) for r in locked.results] == [(slug, "busy") for slug in GOOD]
    assert [live(fleet, slug) for slug in GOOD] == ["0003"] * 7
    # Two runs at once, over pages: one takes the lock, the other changes nothing; each tenant moves once.
    outcomes: list = []
    runs = [threading.Thread(target=lambda: outcomes.append(upgrade_tenants(fleet, Selection(),
                                                                            options=RunOptions(jobs=1))))
            for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(120)
    assert sorted(report.status for report in outcomes) in (["locked", "ok"], ["ok", "ok"])
    ok = [report for report in outcomes if report.status == "ok"]
    assert sum(report.counts["ok"] for report in ok) == 7  # a second ok run found them all at target
    assert [live(fleet, slug) for slug in GOOD] == ["0005"] * 7
    assert ledger_versions(fleet.control_engine) == dict.fromkeys(GOOD, "0005")
