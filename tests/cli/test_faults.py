"""The fleet under faults, as an operator meets them: lock take-overs, kills, stalls, bad input, outages.

Every command here runs against a control URL carrying a password (PostgreSQL's trust login
ignores it); no output of any of these tests may show it.
"""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import make_url

from tenants.core.clock import utcnow
from tenants.core.control_schema import fleet_locks, migration_runs
from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control
from tests.fault_support import Operator, with_secret
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


def run_status(tenancy: Tenancy, run_id: str) -> str:
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(migration_runs.c.status).where(migration_runs.c.id == run_id)).scalar()


def wait_for(condition, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


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


def test_a_run_that_loses_its_lock_stops_and_exits_3(pg_fleet, operator: Operator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, env = pg_fleet
    fleet, chain_env = slow_fleet(settings, env, tmp_path, ["one", "two"], 3)
    try:
        first = operator.start(["upgrade-all-tenants", "--jobs", "1"], PORTAL_LOCK_STALE_AFTER="3", **chain_env)
        row = wait_for(lambda: (r := lock_row(fleet)) and run_status(fleet, r.run_id) == "running" and r)
        time.sleep(0.5)
        with fleet.control_engine.begin() as conn:  # what a take-over does: replace the row, abort the run
            conn.execute(delete(fleet_locks))
            conn.execute(insert(fleet_locks).values(name="fleet", run_id="taker", host="elsewhere", pid=1,
                                                    acquired_at=utcnow(), heartbeat_at=utcnow()))
            conn.execute(update(migration_runs).where(migration_runs.c.id == row.run_id)
                         .values(status="aborted", finished_at=utcnow()))
        out, err = operator.wait(first)
        assert first.returncode == 3, out + err
        assert "lost the fleet lock" in out
        assert run_status(fleet, row.run_id) == "aborted"
        assert sorted([live(fleet, "one"), live(fleet, "two")]) == ["0003", "0004"]  # the in-flight one finished
        assert lock_row(fleet).run_id == "taker"
    finally:
        fleet.close()


def fleet_connections(url: str) -> int:
    """Count the sessions of `url`'s database other than this one."""
    conn = psycopg2.connect(make_url(url).render_as_string(hide_password=False))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid()")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_workers_die_with_a_sigkilled_runner(pg_fleet, operator: Operator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, env = pg_fleet
    fleet, chain_env = slow_fleet(settings, env, tmp_path, ["w1", "w2", "w3", "w4"], 30)
    fleet.close()
    runner = operator.start(["upgrade-all-tenants", "--jobs", "2"], **chain_env)
    wait_for(lambda: active_sleeps([settings.control_url]) == 2)  # both workers inside a tenant
    os.kill(runner.pid, signal.SIGKILL)  # the runner only, as the OOM killer would
    runner.wait(timeout=10)
    time.sleep(12)
    try:
        os.killpg(runner.pid, 0)
        orphans = True
    except ProcessLookupError:
        orphans = False
    assert not orphans, "worker processes outlived their runner"
    assert fleet_connections(settings.control_url) == 0
