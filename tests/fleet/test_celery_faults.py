"""Runs handed to Celery under faults: a lost message or a dead task never leaves the run waiting for ever."""

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from tenants.core.control_schema import fleet_locks, migration_runs, tenant_results
from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control
from tests.fault_support import Operator, ctrl_c_around, other_sessions, wait_for, with_secret
from tests.fleet_support import LOGGED, SLOW, live, make_tenants, rows, with_chain, write_chain
from tests.scale_support import active_sleeps, celery_env, purge_queue, workers

pytestmark = [pytest.mark.celery, pytest.mark.slow]


def lose_queued_messages(env: dict[str, str]) -> int:
    """Delete the messages waiting in the test's queue (a Redis without persistence restarting); return how many."""
    client = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    try:
        waiting = client.llen(env["CELERY_QUEUE"])
        client.delete(env["CELERY_QUEUE"])
        return waiting
    finally:
        client.close()


@pytest.fixture
def celery_fleet(pg_url: str, tmp_path: Path) -> Iterator[tuple[Tenancy, dict[str, str], Operator]]:
    """Four tenants at 0003, a chain whose 0004 sleeps 1.5 s, the env of commands and workers, an operator."""
    url = with_secret(pg_url)
    settings = TenantSettings(control_url=url, tenant_dir=tmp_path / "tenants", lock_timeout=2.0)
    base = Tenancy(settings)
    ensure_control(base)
    make_tenants(base, ["c1", "c2", "c3", "c4"])
    base.close()
    chain = write_chain(tmp_path, {"0004": ("0003", SLOW.format(seconds=1.5) + LOGGED.format(rev="0004"), "")})
    env = {"DATABASE_URL": url, "PORTAL_INSTANCE_PATH": str(tmp_path), "PORTAL_TENANT_DIR": str(settings.tenant_dir),
           "PORTAL_REVISION_DIR": str(chain), "PORTAL_LOCK_TIMEOUT": "2", "PORTAL_STALL_AFTER": "4",
           **celery_env()}
    fleet = Tenancy(with_chain(settings, chain))
    operator = Operator(env)
    try:
        yield fleet, env, operator
    finally:
        operator.close()
        purge_queue(env)
        fleet.close()


def results(tenancy: Tenancy, run_id: str) -> dict[str, list[tuple[str, str | None]]]:
    c = tenant_results.c
    found: dict[str, list[tuple[str, str | None]]] = {}
    with tenancy.control_engine.connect() as conn:
        for slug, status, error in conn.execute(select(c.tenant_slug, c.status, c.error)
                                                .where(c.run_id == run_id).order_by(c.id)):
            found.setdefault(slug, []).append((status, error))
    return found


def run_state(tenancy: Tenancy, run_id: str) -> tuple[str, int]:
    with tenancy.control_engine.connect() as conn:
        status = conn.execute(select(migration_runs.c.status).where(migration_runs.c.id == run_id)).scalar()
        locks = len(conn.execute(select(fleet_locks.c.run_id)).all())
    return status, locks


def test_purged_queue_mid_run_the_slot_is_sent_again_and_the_run_ends(celery_fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fleet, env, operator = celery_fleet
    pg = fleet.settings.control_url
    with workers(env, tmp_path, count=1, concurrency=1):
        began = time.monotonic()
        command = operator.start(["upgrade-all-tenants", "--via", "celery", "--jobs-per-server", "2", "--timeout",
                                  "120"])
        deadline = time.monotonic() + 30
        while active_sleeps([pg]) == 0:  # one slot's tenant runs; the other slot's first task waits in the queue
            assert time.monotonic() < deadline and command.poll() is None, "the run never got going"
            time.sleep(0.05)
        assert lose_queued_messages(env) == 1
        out, err = operator.wait(command, timeout=120)
    assert command.returncode == 0, out + err
    assert time.monotonic() - began < 60
    assert "sent the task of" in out and "again" in out
    assert "upgrade ok: 4 ok, 0 failed" in out
    run_id = out.split(" run ")[-1].split()[0]
    assert {slug: [s for s, _ in found] for slug, found in results(fleet, run_id).items()} == {
        slug: ["ok"] for slug in ("c1", "c2", "c3", "c4")}
    assert all(live(fleet, slug) == "0004" for slug in ("c1", "c2", "c3", "c4"))
    assert run_state(fleet, run_id) == ("ok", 0)


def test_lost_tasks_without_workers_end_in_failed_records_and_wait_has_a_timeout(celery_fleet) -> None:  # type: ignore[no-untyped-def]
    fleet, env, operator = celery_fleet
    sent = operator.run(["upgrade-all-tenants", "--via", "celery", "--jobs-per-server", "1", "--no-wait", "--json"])
    assert sent.returncode == 0, sent.stdout + sent.stderr
    run_id = json.loads(sent.stdout)["run_id"]
    assert lose_queued_messages(env) == 1
    began = time.monotonic()
    waited = operator.run(["run-status", run_id, "--wait", "--timeout", "2"], PORTAL_STALL_AFTER="600")
    assert waited.returncode == 5, waited.stdout + waited.stderr
    assert "stopped waiting after --timeout 2 s" in waited.stdout and time.monotonic() - began < 20
    ended = operator.run(["run-status", run_id, "--wait", "--json", "--timeout", "60"], PORTAL_STALL_AFTER="1")
    assert ended.returncode == 1, ended.stdout + ended.stderr
    report = json.loads(ended.stdout)
    assert report["status"] == "failed" and report["counts"]["failed"] == 4
    assert any("sent the task of c1 again" in note for note in report["notes"])
    found = results(fleet, run_id)
    assert sorted(found) == ["c1", "c2", "c3", "c4"]
    assert all(len(r) == 1 and r[0][0] == "failed" and "no worker ran the task" in r[0][1] for r in found.values())
    assert all(live(fleet, slug) == "0003" for slug in found)
    assert run_state(fleet, run_id) == ("failed", 0)


def handed_off(tenancy: Tenancy) -> bool:
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(fleet_locks.c.host)).scalar() == "celery workers"


def test_ctrl_c_while_following_stops_following_and_leaves_the_run_to_the_workers(celery_fleet) -> None:  # type: ignore[no-untyped-def]
    # No worker runs: the run is handed off, its first task waits in the queue, the command follows it.
    fleet, env, operator = celery_fleet
    command = operator.start(["upgrade-all-tenants", "--via", "celery", "--jobs-per-server", "1", "--json"])
    wait_for(lambda: handed_off(fleet) or command.poll() is not None, timeout=30)
    time.sleep(0.3)  # following: past the hand-off's last write
    os.kill(command.pid, signal.SIGINT)
    out, err = operator.wait(command, timeout=30)
    assert command.returncode == 130, out + err
    report = json.loads(out)
    assert report["status"] == "interrupted"
    assert any(f"stopped following run {report['run_id']}" in note for note in report["notes"])
    assert run_state(fleet, report["run_id"]) == ("running", 1)  # the run goes on: the workers hold its lock
    client = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    try:
        assert client.llen(env["CELERY_QUEUE"]) == 1  # the first task is still there for a worker
    finally:
        client.close()


def test_ctrl_c_before_the_hand_off_sends_nothing_and_closes_the_run(celery_fleet) -> None:  # type: ignore[no-untyped-def]
    fleet, env, operator = celery_fleet
    command = operator.start(["upgrade-all-tenants", "--via", "celery", "--jobs-per-server", "1", "--json"],
                             before=ctrl_c_around("tenants.fleet.runner", "start_run"))
    out, err = operator.wait(command, timeout=60)
    assert command.returncode == 130, out + err
    report = json.loads(out)
    assert report["status"] == "interrupted" and report["not_started"] == ["c1", "c2", "c3", "c4"]
    assert run_state(fleet, report["run_id"]) == ("interrupted", 0)
    assert results(fleet, report["run_id"]) == {} and all(live(fleet, s) == "0003" for s in ("c1", "c2", "c3", "c4"))
    assert lose_queued_messages(env) == 0  # nothing was sent


def test_a_task_whose_worker_dies_after_its_commit_is_not_run_twice(celery_fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # mark-then-die commits a row, then kills its worker process on c1: Celery delivers the task again.
    # Run again, a task that is not safe to repeat would do its work twice; it is recorded instead.
    fleet, env, operator = celery_fleet
    tasks = {"PORTAL_TASK_MODULES": "tests.fleet.dying_task"}
    with workers({**env, **tasks}, tmp_path, count=1, concurrency=1):
        run = operator.run(["for-each-tenant", "mark-then-die", "--via", "celery", "--jobs-per-server", "1",
                            "--json", "--timeout", "90"], **tasks)
    assert run.returncode == 1, run.stdout + run.stderr
    report = json.loads(run.stdout)
    final = {r["slug"]: r for r in report["results"]}
    assert {slug: r["status"] for slug, r in final.items()} == {"c1": "failed", "c2": "ok", "c3": "ok", "c4": "ok"}
    assert "whether it committed is not known" in final["c1"]["error"]
    marked = {slug: rows(fleet, slug, "SELECT count(*) FROM roles WHERE name LIKE 'marked-%'")[0][0]
              for slug in final}
    assert marked == {"c1": 1, "c2": 1, "c3": 1, "c4": 1}  # c1's work was done once, not twice
    assert run_state(fleet, report["run_id"]) == ("failed", 0)


def test_a_copy_waiting_on_the_slot_sees_the_mark_of_the_copy_that_died(celery_fleet) -> None:  # type: ignore[no-untyped-def]
    # Two copies of c2's task: B holds the slot and marks the task begun, then dies; A had read its
    # row before that and waited on the slot. A must go by the mark it finds under the lock.
    import threading

    import psycopg2
    from sqlalchemy import update
    from sqlalchemy.engine import make_url

    import tests.fleet.dying_task  # noqa: F401  registers mark-then-die in this process, as in a worker
    from tenants.core.clock import utcnow
    from tenants.core.control_schema import dispatched_tenants
    from tenants.fleet.celery.relay import SLOT_LOCK_NAMESPACE, run_step, slot_key

    fleet, env, operator = celery_fleet
    sent = operator.run(["for-each-tenant", "mark-then-die", "--via", "celery", "--jobs-per-server", "1",
                         "--no-wait", "--json"], PORTAL_TASK_MODULES="tests.fleet.dying_task")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    run_id = json.loads(sent.stdout)["run_id"]
    with fleet.control_engine.connect() as conn:
        server, slot = conn.execute(select(dispatched_tenants.c.server, dispatched_tenants.c.slot).where(
            dispatched_tenants.c.run_id == run_id, dispatched_tenants.c.tenant_slug == "c2")).one()
    b = psycopg2.connect(make_url(fleet.settings.control_url).render_as_string(hide_password=False))
    try:
        with b.cursor() as cur:  # copy B: the slot's lock, held by its open transaction
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (SLOT_LOCK_NAMESPACE, slot_key(run_id, server, slot)))
        steps: list = []
        a = threading.Thread(target=lambda: steps.append(run_step(fleet, run_id, "c2")))
        a.start()
        wait_for(lambda: other_sessions(fleet.settings.control_url, "wait_event_type = 'Lock'") == 1, timeout=30)
        with fleet.control_engine.begin() as conn:  # B marks the task begun ...
            conn.execute(update(dispatched_tenants).where(dispatched_tenants.c.run_id == run_id,
                                                          dispatched_tenants.c.tenant_slug == "c2")
                         .values(started_at=utcnow()))
    finally:
        b.close()  # ... and dies: its transaction, and the slot lock with it, end
    a.join(timeout=60)
    assert steps and steps[0].result.status == "failed", steps
    assert "whether it committed is not known" in steps[0].result.error
    assert rows(fleet, "c2", "SELECT count(*) FROM roles WHERE name LIKE 'marked-%'") == [(0,)]  # A did not run it
