"""The fleet under faults, as an operator meets them: lock take-overs, kills, stalls, bad input, outages.

Every command here runs against a control URL carrying a password (PostgreSQL's trust login
ignores it); no output of any of these tests may show it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import make_url

from tenants.core.binding import tenant_session
from tenants.core.clock import utcnow
from tenants.core.control_schema import fleet_locks, migration_runs, tenant_results
from tenants.core.errors import StorageUnavailable
from tenants.core.ledger import ledger_versions
from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.migrate.control import ensure_control
from tests.conftest import admin_execute, create_pg_database, drop_pg_database, run_manage
from tests.fault_support import SECRET, Operator, ctrl_c_around, other_sessions, wait_for, with_secret
from tests.fleet_support import LOGGED, SLOW, live, make_tenants, with_chain, write_chain
from tests.scale_support import active_sleeps


@pytest.fixture
def pg_fleet(pg_url: str, tmp_path: Path) -> Iterator[tuple[TenantSettings, dict[str, str]]]:
    """A PostgreSQL control plane reached with a password, and the environment manage.py needs."""
    url = with_secret(pg_url)
    settings = TenantSettings(control_url=url, tenant_dir=tmp_path / "tenants", lock_timeout=2.0)
    env = {"DATABASE_URL": url, "PORTAL_INSTANCE_PATH": str(tmp_path), "PORTAL_TENANT_DIR": str(settings.tenant_dir)}
    yield settings, env


@pytest.fixture
def operator(pg_fleet: tuple[TenantSettings, dict[str, str]]) -> Iterator[Operator]:
    """An operator on the PostgreSQL fleet; at the end, no output may contain the password."""
    op = Operator(pg_fleet[1])
    yield op
    op.close()


def slow_fleet(settings: TenantSettings, env: dict, tmp_path: Path, slugs: list[str], seconds: float,
               ) -> tuple[Tenancy, dict[str, str]]:
    """Tenants at 0003 and a chain whose 0004 sleeps `seconds` in each tenant; the fleet's Tenancy and env."""
    base = Tenancy(settings)
    ensure_control(base)
    make_tenants(base, slugs)
    base.close()
    chain = write_chain(tmp_path, {"0004": ("0003", SLOW.format(seconds=seconds) + LOGGED.format(rev="0004"), "")})
    return Tenancy(with_chain(settings, chain)), {"PORTAL_REVISION_DIR": str(chain)}


def lock_row(tenancy: Tenancy):  # type: ignore[no-untyped-def]
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(fleet_locks)).first()


def take_over(tenancy: Tenancy, run_id: str) -> None:
    """Do what a take-over of a stale fleet lock does: replace the lock row, abort the holder's run."""
    with tenancy.control_engine.begin() as conn:
        conn.execute(delete(fleet_locks))
        conn.execute(insert(fleet_locks).values(name="fleet", run_id="taker", host="elsewhere", pid=1,
                                                acquired_at=utcnow(), heartbeat_at=utcnow()))
        conn.execute(update(migration_runs).where(migration_runs.c.id == run_id)
                     .values(status="aborted", finished_at=utcnow()))


def run_status(tenancy: Tenancy, run_id: str) -> str:
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(migration_runs.c.status).where(migration_runs.c.id == run_id)).scalar()


@pytest.mark.slow
def test_a_live_run_keeps_its_lock_through_a_long_tenant(pg_fleet, operator: Operator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, env = pg_fleet
    fleet, chain_env = slow_fleet(settings, env, tmp_path, ["solo"], 7)
    try:
        first = operator.start(["upgrade-all-tenants", "--jobs", "1"], PORTAL_LOCK_STALE_AFTER="3", **chain_env)
        wait_for(lambda: (row := lock_row(fleet)) and run_status(fleet, row.run_id) == "running")
        time.sleep(4.5)  # inside the tenant, longer than the staleness limit
        row = lock_row(fleet)
        assert (utcnow() - row.heartbeat_at).total_seconds() < 3, "no heartbeat while the tenant runs"
        assert row.stale_after == 3
        second = operator.run(["upgrade-all-tenants"], PORTAL_LOCK_STALE_AFTER="3", **chain_env)
        assert second.returncode == 3, second.stdout + second.stderr
        assert "fleet lock is held by run" in second.stdout + second.stderr
        out, err = operator.wait(first)
        assert first.returncode == 0, out + err
        assert run_status(fleet, row.run_id) == "ok" and live(fleet, "solo") == "0004"
    finally:
        fleet.close()


@pytest.mark.slow
def test_a_run_that_loses_its_lock_stops_and_exits_3(pg_fleet, operator: Operator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, env = pg_fleet
    fleet, chain_env = slow_fleet(settings, env, tmp_path, ["one", "two"], 3)
    try:
        first = operator.start(["upgrade-all-tenants", "--jobs", "1"], PORTAL_LOCK_STALE_AFTER="3", **chain_env)
        row = wait_for(lambda: (r := lock_row(fleet)) and run_status(fleet, r.run_id) == "running" and r)
        time.sleep(0.5)
        take_over(fleet, row.run_id)
        out, err = operator.wait(first)
        assert first.returncode == 3, out + err
        assert "lost the fleet lock" in out
        assert run_status(fleet, row.run_id) == "aborted"
        assert sorted([live(fleet, "one"), live(fleet, "two")]) == ["0003", "0004"]  # the in-flight one finished
        assert lock_row(fleet).run_id == "taker"
    finally:
        fleet.close()


@pytest.mark.slow
@pytest.mark.parametrize("then_ctrl_c", [False, True], ids=["lost", "lost-then-ctrl-c"])
def test_a_pooled_run_that_loses_its_lock_starts_none_of_its_queued_tenants(  # type: ignore[no-untyped-def]
        pg_fleet, operator: Operator, tmp_path: Path, then_ctrl_c: bool) -> None:
    # Tenants of 3 s: the lost lock is found within a heartbeat (1 s), and the run stops within its next turn.
    # A Ctrl-C after that changes nothing: the run stopped for its lost lock, and says so once.
    fleet, slugs = two_under_way(pg_fleet, operator, tmp_path, 3, PORTAL_LOCK_STALE_AFTER="3")
    try:
        row = lock_row(fleet)
        take_over(fleet, row.run_id)
        if then_ctrl_c:
            time.sleep(1.5)  # a heartbeat has found the lock lost; the tenants under way still run
            os.kill(operator.started[-1].pid, signal.SIGINT)
        out, err = operator.wait(operator.started[-1])
        assert operator.started[-1].returncode == 3, out + err
        report = json.loads(out)
        assert report["status"] == "lock-lost"
        assert sum("lost the fleet lock" in note for note in report["notes"]) == 1, report["notes"]
        only_those_under_way_ran(fleet, report, slugs)
        assert run_status(fleet, row.run_id) == "aborted" and lock_row(fleet).run_id == "taker"
    finally:
        fleet.close()


def two_under_way(pg_fleet, operator: Operator, tmp_path: Path, seconds: float,  # type: ignore[no-untyped-def]
                  **env: str) -> tuple[Tenancy, list[str]]:
    """Start `upgrade-all-tenants --jobs 2` over six tenants whose revision takes `seconds`; return when two run.

    The other four then wait: two in the pool's queue, two in the runner's. Returns (fleet, slugs).
    """
    settings, base_env = pg_fleet
    slugs = [f"s{i}" for i in range(6)]
    fleet, chain_env = slow_fleet(settings, base_env, tmp_path, slugs, seconds)
    try:
        operator.start(["upgrade-all-tenants", "--jobs", "2", "--json"], **chain_env, **env)
        wait_for(lambda: active_sleeps([settings.control_url]) == 2 and lock_row(fleet))
    except BaseException:
        fleet.close()
        raise
    return fleet, slugs


def report_matches_tenants_and_ledger(fleet: Tenancy, report: dict, slugs: list[str]) -> dict[str, str]:
    """Assert that every slug has a result or is not started, that the tenants and the ledger agree with
    the report (ok: at 0004, else at 0003); return slug: status of those that ran."""
    ran = {r["slug"]: r["status"] for r in report["results"]}
    assert sorted([*ran, *report["not_started"]]) == slugs
    assert {slug: live(fleet, slug) for slug in slugs} == {s: "0004" if ran.get(s) == "ok" else "0003" for s in slugs}
    with fleet.control_engine.connect() as conn:
        recorded = conn.execute(select(tenant_results.c.tenant_slug, tenant_results.c.status)
                                .where(tenant_results.c.run_id == report["run_id"])).all()
    assert dict(recorded) == ran  # the ledger has what the report has
    return ran


def only_those_under_way_ran(fleet: Tenancy, report: dict, slugs: list[str]) -> None:
    """Assert that the two tenants under way finished and are recorded, and that no other one started."""
    assert list(report_matches_tenants_and_ledger(fleet, report, slugs).values()) == ["ok", "ok"]


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_workers_die_with_a_sigkilled_runner(pg_fleet, operator: Operator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, env = pg_fleet
    fleet, chain_env = slow_fleet(settings, env, tmp_path, ["w1", "w2", "w3", "w4"], 30)
    fleet.close()
    runner = operator.start(["upgrade-all-tenants", "--jobs", "2"], **chain_env)
    wait_for(lambda: active_sleeps([settings.control_url]) == 2)  # both workers inside a tenant
    os.kill(runner.pid, signal.SIGKILL)  # the runner only, as the OOM killer would
    runner.wait(timeout=10)

    def group_gone() -> bool:
        try:
            os.killpg(runner.pid, 0)
        except ProcessLookupError:
            return True
        return False

    # Well before their 30 s tenants could end: the workers died with the runner, their sessions with them.
    wait_for(lambda: group_gone() and other_sessions(settings.control_url) == 0, timeout=15)


@pytest.mark.parametrize("url, message", [
    ("postgres://postgres@127.0.0.1:5432/postgres", "use postgresql://"),
    ("garbage", "invalid database URL"),
    (f"mysql://root:{SECRET}@127.0.0.1/shop", "unsupported database"),
])
@pytest.mark.slow
def test_bad_database_url_is_refused_before_anything_is_registered(pg_fleet, operator: Operator, url: str,  # type: ignore[no-untyped-def]
                                                                   message: str) -> None:
    settings, _ = pg_fleet
    result = operator.run(["create-tenant", "acme", "--database-url", url])
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert_not_registered(settings, "acme")
    for args in (["list-tenants"], ["tenant-versions"], ["create-tenant", "acme"]):
        done = operator.run(args)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_row_with_a_bad_url_from_before_is_served_and_dropped(pg_fleet, operator: Operator) -> None:  # type: ignore[no-untyped-def]
    # Rows registered by a version that did not check URLs: one in use (active), one whose
    # creation never got storage (provisioning). Both are listed; the second is simply removed.
    # The first is not: its data may be at that URL (libpq takes postgres://), and no engine here can drop it.
    settings, _ = pg_fleet
    tenancy = Tenancy(settings)
    try:
        ensure_control(tenancy)
        for slug in ("legacy", "stub"):
            tenancy.registry.add(slug, slug, f"postgres://postgres:{SECRET}@127.0.0.1/x")  # no check then
        tenancy.registry.set_status("legacy", "active")
        listed = operator.run(["list-tenants", "--json"])
        assert listed.returncode == 0, listed.stderr
        rows = {row["slug"]: row for row in json.loads(listed.stdout)}
        assert (rows["legacy"]["status"], rows["stub"]["status"]) == ("unreachable", "provisioning")
        assert "unsupported database" in rows["legacy"]["error"] and "unsupported database" in rows["stub"]["error"]
        versions = operator.run(["tenant-versions"])
        assert versions.returncode == 0 and "0 of 2 tenants at head; 1 unreachable" in versions.stdout
        dropped = operator.run(["drop-tenant", "stub", "--yes"])
        assert dropped.returncode == 0, dropped.stderr
        assert tenancy.registry.find("stub") is None
        refused = operator.run(["drop-tenant", "legacy", "--yes"])
        assert refused.returncode == 3 and refused.stderr.count("\n") == 1, refused.stderr
        assert "unsupported database 'postgres://postgres:***@127.0.0.1/x'" in refused.stderr
        assert tenancy.registry.get("legacy").status == "active"
    finally:
        tenancy.close()


@pytest.mark.slow
def test_a_killed_create_does_not_block_its_slug(pg_fleet, operator: Operator) -> None:  # type: ignore[no-untyped-def]
    settings, _ = pg_fleet
    tenancy = Tenancy(settings)
    try:
        ensure_control(tenancy)
        for slug in ("left", "gone"):  # what a create-tenant SIGKILLed half-way leaves: a provisioning row
            tenancy.registry.add(slug, slug, None, creator=(socket.gethostname(), dead_pid()))
            tenancy.storage(slug).create()
        retry = operator.run(["create-tenant", "left"])
        assert retry.returncode == 0, retry.stdout + retry.stderr
        assert tenancy.registry.get("left").status == "active"
        dropped = operator.run(["drop-tenant", "gone", "--yes"])
        assert dropped.returncode == 0, dropped.stdout + dropped.stderr
        assert tenancy.registry.find("gone") is None
        with tenancy.control_engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM information_schema.schemata "
                                     "WHERE schema_name = 'tenant_gone'")).scalar() == 0
        tenancy.registry.add("busy", "busy", None, creator=(socket.gethostname(), os.getpid()))  # alive: refused
        refused = operator.run(["create-tenant", "busy"])
        assert refused.returncode == 2 and "is being created by pid" in refused.stderr
    finally:
        tenancy.close()


def test_overlong_name_exits_2_without_traceback_or_password(pg_fleet, operator: Operator, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    settings, _ = pg_fleet
    result = operator.run(["create-tenant", "acme", "--name", "x" * 201, "--database-url", with_secret(pg_url)])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--name" in result.stderr and "200" in result.stderr and "Traceback" not in result.stderr
    assert_not_registered(settings, "acme")


def control_outage(url: str, down: bool) -> None:
    """Refuse (and end) every session of the control database, or let them in again."""
    name = make_url(url).database
    admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if down else "true"}')  # test's own database
    if down:
        admin_execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


@pytest.fixture
def far_fleet(pg_fleet, tmp_path: Path) -> Iterator[tuple[Tenancy, dict[str, str], str]]:  # type: ignore[no-untyped-def]
    """Tenants f1..f3 in a database of their own (not the control plane's), and a chain whose 0004 sleeps 3 s."""
    settings, env = pg_fleet
    tenant_url = with_secret(create_pg_database())
    base = Tenancy(settings)
    try:
        ensure_control(base)
        for slug in ("f1", "f2", "f3"):
            create_tenant(base, slug, database_url=tenant_url)
    finally:
        base.close()
    chain = write_chain(tmp_path, {"0004": ("0003", SLOW.format(seconds=3) + LOGGED.format(rev="0004"), "")})
    fleet = Tenancy(with_chain(settings, chain))
    try:
        yield fleet, {"PORTAL_REVISION_DIR": str(chain)}, tenant_url
    finally:
        control_outage(settings.control_url, down=False)
        fleet.close()
        drop_pg_database(tenant_url)


@pytest.mark.slow
def test_control_plane_outage_mid_run_gives_one_line_a_summary_and_exit_3(pg_fleet, far_fleet,  # type: ignore[no-untyped-def]
                                                                          operator: Operator) -> None:
    settings, _ = pg_fleet
    fleet, chain_env, tenant_url = far_fleet
    for as_json in (True, False):
        run = operator.start(["upgrade-all-tenants", "--jobs", "1", *(["--json"] if as_json else [])], **chain_env)
        wait_for(lambda: active_sleeps([tenant_url]) == 1)
        control_outage(settings.control_url, down=True)
        out, err = operator.wait(run)
        control_outage(settings.control_url, down=False)
        assert run.returncode == 3, out + err
        assert "Traceback" not in err and "control plane unreachable: " in err and len(err.strip().splitlines()) == 1
        if as_json:
            report = json.loads(out)
            assert report["status"] == "aborted" and report["exit_code"] == 3
            assert report["counts"]["ok"] == 1 and len(report["not_started"]) == 2
        else:
            assert "upgrade aborted: 1 ok" in out and "1 not started" in out
    done = operator.run(["upgrade-all-tenants", "--json"], **chain_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(live(fleet, slug) == "0004" for slug in ("f1", "f2", "f3"))
    assert ledger_versions(fleet.control_engine) == dict.fromkeys(("f1", "f2", "f3"), "0004")


@pytest.mark.slow
def test_ctrl_c_with_one_job_accounts_for_the_tenant_in_flight(pg_fleet, operator: Operator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, env = pg_fleet
    fleet, chain_env = slow_fleet(settings, env, tmp_path, ["i1", "i2", "i3"], 3)
    try:
        run = operator.start(["upgrade-all-tenants", "--jobs", "1", "--json"], **chain_env)
        wait_for(lambda: active_sleeps([settings.control_url]) == 1)
        os.kill(run.pid, signal.SIGINT)
        out, err = operator.wait(run)
        assert run.returncode == 130, out + err
        report = json.loads(out)
        assert report["status"] == "interrupted"
        accounted = {r["slug"]: r["status"] for r in report["results"]} | dict.fromkeys(report["not_started"], "-")
        assert accounted == {"i1": "failed", "i2": "-", "i3": "-"}
        assert "interrupted" in report["results"][0]["error"] and live(fleet, "i1") == "0003"
        with fleet.control_engine.connect() as conn:
            recorded = conn.execute(select(tenant_results.c.tenant_slug, tenant_results.c.status)
                                    .where(tenant_results.c.run_id == report["run_id"])).all()
            run_row = conn.execute(select(migration_runs).where(migration_runs.c.id == report["run_id"])).one()
        assert [tuple(r) for r in recorded] == [("i1", "failed")]
        assert (run_row.status, run_row.tenants_failed, run_row.tenants_skipped) == ("interrupted", 1, 2)
    finally:
        fleet.close()


@pytest.mark.slow
def test_ctrl_c_with_a_pool_finishes_the_tenants_under_way_and_starts_no_other(  # type: ignore[no-untyped-def]
        pg_fleet, operator: Operator, tmp_path: Path) -> None:
    # Ctrl-C reaches the whole process group, as at a terminal: the workers ignore it and finish
    # their tenant; the runner stops handing out tenants, and those queued in the pool never start.
    fleet, slugs = two_under_way(pg_fleet, operator, tmp_path, 2)
    try:
        run = operator.started[-1]
        os.killpg(run.pid, signal.SIGINT)
        out, err = operator.wait(run)
        report = json.loads(out)
        assert report["status"] == "interrupted" and run.returncode == 130, out + err
        only_those_under_way_ran(fleet, report, slugs)
        assert run_status(fleet, report["run_id"]) == "interrupted"
        with pytest.raises(ProcessLookupError):  # no worker outlived the runner
            os.killpg(run.pid, 0)
    finally:
        fleet.close()


# Run in the runner's process before manage.py (with `--jobs N`): each sends Ctrl-C at a moment no
# outside signal can be timed to hit. Recording: just after the 2nd result went to the ledger's
# buffer, before it reached the report. Committed: just after a tenant run in the runner's own
# process committed, before its result came back.
INTERRUPT_WHILE_RECORDING = """
import os, signal
from tenants.fleet.recorder import ResultBuffer
add, calls = ResultBuffer.add, []
def interrupted_add(self, *args):
    add(self, *args)
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGINT)
ResultBuffer.add = interrupted_add
"""
INTERRUPT_AFTER_A_COMMIT = ctrl_c_around("tenants.fleet.runner", "run_unit", after=True)


def run_interrupted(operator: Operator, fault: str, jobs: int, env: dict[str, str]) -> dict:
    """Run `upgrade-all-tenants --jobs N --json` with `fault` in its process; assert exit 130, the run
    closed `interrupted` and report, tenants and ledger in agreement; return the report."""
    run = operator.start(["upgrade-all-tenants", "--jobs", str(jobs), "--json"], before=fault, **env)
    out, err = operator.wait(run)
    assert run.returncode == 130, out + err
    report = json.loads(out)
    assert report["status"] == "interrupted"
    return report


@pytest.mark.slow
def test_ctrl_c_while_a_result_is_recorded_loses_no_result(  # type: ignore[no-untyped-def]
        pg_fleet, operator: Operator, tmp_path: Path) -> None:
    settings, env = pg_fleet
    slugs = [f"r{i}" for i in range(6)]
    fleet, chain_env = slow_fleet(settings, env, tmp_path, slugs, 0.3)
    try:
        report = run_interrupted(operator, INTERRUPT_WHILE_RECORDING, 2, chain_env)
        ran = report_matches_tenants_and_ledger(fleet, report, slugs)
        assert run_status(fleet, report["run_id"]) == "interrupted"  # not left `running`
        assert len(ran) >= 2 and set(ran.values()) == {"ok"}  # the result being recorded is in the report
    finally:
        fleet.close()


@pytest.mark.slow
def test_ctrl_c_just_after_a_commit_with_one_job_records_the_tenant_ok(  # type: ignore[no-untyped-def]
        pg_fleet, operator: Operator, tmp_path: Path) -> None:
    # Ctrl-C interrupts the tenant running in the runner's process: it had already committed, so
    # the tenant itself says it is at 0004; "rolled back, unchanged" would be a lie in the ledger.
    settings, env = pg_fleet
    slugs = ["c1", "c2", "c3"]
    fleet, chain_env = slow_fleet(settings, env, tmp_path, slugs, 0)
    try:
        report = run_interrupted(operator, INTERRUPT_AFTER_A_COMMIT, 1, chain_env)
        assert report_matches_tenants_and_ledger(fleet, report, slugs) == {"c1": "ok"}
        assert report["not_started"] == ["c2", "c3"] and run_status(fleet, report["run_id"]) == "interrupted"
        assert "committed; then interrupted (Ctrl-C)" in report["results"][0]["detail"]
    finally:
        fleet.close()


@pytest.mark.slow
def test_ctrl_c_as_the_run_row_is_opened_starts_no_tenant_and_closes_the_row(  # type: ignore[no-untyped-def]
        pg_fleet, operator: Operator, tmp_path: Path) -> None:
    # Before any tenant: a KeyboardInterrupt here left the run row `running` for good (the lock was freed).
    settings, env = pg_fleet
    slugs = ["s1", "s2", "s3"]
    fleet, chain_env = slow_fleet(settings, env, tmp_path, slugs, 0)
    try:
        report = run_interrupted(operator, ctrl_c_around("tenants.fleet.runner", "start_run"), 2, chain_env)
        assert report_matches_tenants_and_ledger(fleet, report, slugs) == {}
        assert report["not_started"] == slugs and run_status(fleet, report["run_id"]) == "interrupted"
        assert lock_row(fleet) is None
    finally:
        fleet.close()


@pytest.mark.slow
def test_ctrl_c_as_the_run_row_is_closed_records_what_happened(  # type: ignore[no-untyped-def]
        pg_fleet, operator: Operator, tmp_path: Path) -> None:
    # Every tenant had finished: the run is ok, and its row says so (it stayed `running` before).
    # The same for a run with nothing to do, whose row is opened and closed at once.
    settings, env = pg_fleet
    slugs = ["f1", "f2", "f3"]
    fleet, chain_env = slow_fleet(settings, env, tmp_path, slugs, 0)
    try:
        for expected in ("ok", "at-target"):
            run = operator.start(["upgrade-all-tenants", "--jobs", "2", "--json"],
                                 before=ctrl_c_around("tenants.fleet.runner", "finish_run"), **chain_env)
            out, err = operator.wait(run)
            assert run.returncode == 0, out + err
            report = json.loads(out)
            assert report["status"] == "ok" and run_status(fleet, report["run_id"]) == "ok"
            assert {r["slug"]: r["status"] for r in report["results"]} == dict.fromkeys(slugs, expected)
            assert [live(fleet, slug) for slug in slugs] == ["0004"] * 3
            assert lock_row(fleet) is None
    finally:
        fleet.close()


BUG_IN_THE_RUNNER = """
from tenants.fleet import runner
def broken(items, size):
    raise RuntimeError("injected: a bug in the runner")
runner.paged = broken
"""


@pytest.mark.slow
def test_an_unforeseen_error_in_a_run_closes_its_row_and_frees_the_lock(  # type: ignore[no-untyped-def]
        pg_fleet, operator: Operator, tmp_path: Path) -> None:
    # A bug, not a tenant's failure: the traceback is shown, and the row does not stay `running` for good.
    settings, env = pg_fleet
    slugs = ["b1", "b2"]
    fleet, chain_env = slow_fleet(settings, env, tmp_path, slugs, 0)
    try:
        run = operator.start(["upgrade-all-tenants", "--jobs", "2"], before=BUG_IN_THE_RUNNER, **chain_env)
        out, err = operator.wait(run)
        assert run.returncode == 1 and "RuntimeError: injected: a bug in the runner" in err, out + err
        with fleet.control_engine.connect() as conn:
            statuses = conn.execute(select(migration_runs.c.status).where(migration_runs.c.kind == "upgrade")).all()
        assert [status for status, in statuses] == ["aborted"]
        assert lock_row(fleet) is None and [live(fleet, slug) for slug in slugs] == ["0003", "0003"]
    finally:
        fleet.close()


def corrupt(path: Path) -> None:
    """Overwrite a SQLite file's header, as a disk fault or a stray write would."""
    data = bytearray(path.read_bytes())
    data[0:16] = b"not a database!!"
    path.write_bytes(bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_corrupt_sqlite_files_are_unreachable_not_a_traceback(cli_env: dict, tenancy: Tenancy, settings) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["good", "bad"])
    tenancy.close()
    corrupt(settings.tenant_dir / "bad.sqlite3")
    listed = run_manage(["list-tenants", "--json"], cli_env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["slug"]: row for row in json.loads(listed.stdout)}
    assert rows["good"]["status"] == "active" and rows["good"]["at_head"]
    assert rows["bad"]["status"] == "unreachable" and "not a database" in rows["bad"]["error"]
    plain = run_manage(["list-tenants"], cli_env)
    assert plain.returncode == 0 and "unreachable" in plain.stdout and "not a database" in plain.stdout
    versions = run_manage(["tenant-versions"], cli_env)
    assert versions.returncode == 0, versions.stderr
    assert "1 of 2 tenants at head; 1 unreachable" in versions.stdout
    bad = [line for line in versions.stdout.splitlines() if line.startswith("bad ")]
    assert "unreachable" in bad[0] and "not a database" in bad[0]
    corrupt(Path(make_url(settings.control_url).database))
    for args in (["list-tenants"], ["upgrade-all-tenants"], ["create-tenant", "other"]):
        result = run_manage(args, cli_env)
        assert result.returncode == 3, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "control database" in result.stderr and "cannot be read" in result.stderr


@pytest.mark.parametrize("backend", ["sqlite"])
def test_find_serves_the_readable_tenants_and_names_a_corrupt_one(console, root, settings) -> None:  # type: ignore[no-untyped-def]
    corrupt(settings.tenant_dir / f"{console.b}.sqlite3")
    console.tenancy.engines.dispose()
    page = root.get("/admin/find/?kind=user&q=ada@")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"ada@{console.a}.example" in html
    alert = html[html.index('id="find-unreadable"'):]
    assert console.b in alert[:alert.index("</div>")]
    with pytest.raises(StorageUnavailable):
        with tenant_session(console.tenancy.storage(console.b)) as session:
            session.execute(text("SELECT 1 FROM users"))


def assert_not_registered(settings, slug: str) -> None:  # type: ignore[no-untyped-def]
    """Assert that the registry holds no row for `slug`."""
    tenancy = Tenancy(settings)
    try:
        ensure_control(tenancy)
        assert tenancy.registry.find(slug) is None
    finally:
        tenancy.close()
