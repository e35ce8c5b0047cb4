"""The fleet lock row: one holder at a time, stale holders detected, reported and replaced."""

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from tenants.cli.exit_codes import exit_code_for
from tenants.core.clock import utcnow
from tenants.core.control_schema import fleet_locks, migration_runs
from tenants.core.ledger import start_run
from tenants.core.tenancy import Tenancy
from tenants.fleet.errors import FleetLocked
from tenants.fleet.lock import FleetLock, pid_alive


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_second_holder_is_refused_with_the_holder_named(tenancy: Tenancy) -> None:
    first = FleetLock(tenancy.control_engine)
    assert first.acquire() is None
    with pytest.raises(FleetLocked) as refused:
        FleetLock(tenancy.control_engine).acquire()
    assert f"pid {os.getpid()} on {socket.gethostname()}" in str(refused.value)
    assert exit_code_for(refused.value) == 3
    first.release()
    again = FleetLock(tenancy.control_engine)
    assert again.acquire() is None
    again.release()


def test_dead_holder_on_this_host_is_taken_over(tenancy: Tenancy) -> None:
    engine = tenancy.control_engine
    run_id = start_run(engine, "upgrade", "0003")
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(fleet_locks).values(name="fleet", run_id=run_id, host=socket.gethostname(),
                                                pid=_dead_pid(), acquired_at=now, heartbeat_at=now))
    lock = FleetLock(engine)
    note = lock.acquire()
    assert note and f"run {run_id}" in note and "is gone" in note
    with engine.connect() as conn:
        assert conn.execute(select(migration_runs.c.status).where(migration_runs.c.id == run_id)).scalar() == "aborted"
    lock.release()


def test_holder_without_heartbeat_is_stale(tenancy: Tenancy) -> None:
    engine = tenancy.control_engine
    holder = FleetLock(engine)
    holder.acquire()
    with engine.begin() as conn:  # another host, silent for an hour
        conn.execute(update(fleet_locks).values(host="elsewhere", heartbeat_at=utcnow() - timedelta(hours=1)))
    note = FleetLock(engine, stale_after=600).acquire()
    assert note and "no heartbeat for" in note


def test_pid_alive() -> None:
    assert pid_alive(os.getpid()) and not pid_alive(_dead_pid())
