"""The fleet lock row: one holder at a time, stale holders detected, reported and replaced."""

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select, update

from tenants.cli.exit_codes import exit_code_for
from tenants.core.clock import aware, utcnow
from tenants.core.control_schema import fleet_locks, migration_runs
from tenants.core.ledger import start_run
from tenants.core.tenancy import Tenancy
from tenants.fleet.errors import FleetLocked
from tenants.fleet.lock import FleetLock, Heartbeat, pid_alive


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


def _holder_row(engine, *, host: str, pid: int, age: float, stale_after: float | None) -> str:  # type: ignore[no-untyped-def]
    run_id = start_run(engine, "upgrade", "0003")
    beat = utcnow() - timedelta(seconds=age)
    with engine.begin() as conn:
        conn.execute(insert(fleet_locks).values(name="fleet", run_id=run_id, host=host, pid=pid, acquired_at=beat,
                                                heartbeat_at=beat, stale_after=stale_after))
    return run_id


def test_staleness_is_judged_by_the_holders_own_limit(tenancy: Tenancy) -> None:
    engine = tenancy.control_engine
    _holder_row(engine, host="elsewhere", pid=1, age=60, stale_after=600)
    with pytest.raises(FleetLocked):  # the newcomer's short limit does not make a patient holder stale
        FleetLock(engine, stale_after=3).acquire()
    with engine.begin() as conn:
        conn.execute(update(fleet_locks).values(stale_after=30))
    lock = FleetLock(engine, stale_after=3600)  # ... and its long limit does not keep an impatient one alive
    note = lock.acquire()
    assert note and "no heartbeat for 60 s (stale after 30 s)" in note
    with engine.connect() as conn:
        assert conn.execute(select(fleet_locks.c.stale_after)).scalar() == 3600
    lock.release()


def test_live_holder_on_this_host_is_never_stale(tenancy: Tenancy) -> None:
    engine = tenancy.control_engine
    run_id = _holder_row(engine, host=socket.gethostname(), pid=os.getpid(), age=3600, stale_after=3)
    with pytest.raises(FleetLocked) as refused:
        FleetLock(engine, stale_after=3).acquire()
    assert f"run {run_id}" in str(refused.value)
    with engine.connect() as conn:
        assert conn.execute(select(migration_runs.c.status).where(migration_runs.c.id == run_id)).scalar() == "running"


def test_heartbeat_says_when_the_lock_is_gone(tenancy: Tenancy) -> None:
    lock = FleetLock(tenancy.control_engine)
    lock.acquire()
    assert lock.heartbeat() is True
    with tenancy.control_engine.begin() as conn:  # another run took it over
        conn.execute(update(fleet_locks).values(run_id="someone-else"))
    assert lock.heartbeat() is False


def test_heartbeat_thread_keeps_the_row_fresh_and_notices_a_loss(tenancy: Tenancy) -> None:
    engine = tenancy.control_engine
    lock = FleetLock(engine)
    lock.acquire()
    beat = Heartbeat(lock, every=0.2)
    beat.start()
    try:
        first = aware(lock.holder().heartbeat_at)
        time.sleep(0.8)
        assert aware(lock.holder().heartbeat_at) > first and not beat.lost.is_set()
        with engine.begin() as conn:
            conn.execute(delete(fleet_locks))
        assert beat.lost.wait(5)
    finally:
        beat.stop()
