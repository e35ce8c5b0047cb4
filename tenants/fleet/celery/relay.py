"""One step of a run handed to Celery: run one tenant of a slot, record it, name the next.

A dispatched run splits each server's tenants into `--jobs-per-server` slots (see
tenants.fleet.servers.assign_slots). A slot is a relay: the task for its first tenant is sent
at dispatch, and each task, once its tenant's result is in the ledger, sends the task for the
slot's next tenant. So a server never has more tenants under way than it has slots, whoever
runs them, and a message stays a few bytes however long the slot is.

Each step holds the slot's lock (a PostgreSQL advisory lock in the control plane, held by an
open transaction, so it dies with the worker) while it checks and runs its tenant. Under it:
a tenant that already has a result in this run is never run or recorded again (a redelivered
task is a no-op), and two copies of one slot never run side by side. A maintenance task is
marked begun first (dispatched_tenants.started_at): delivered again after its worker died, it is
recorded `failed`, "whether it committed is not known", instead of run a second time. The
tenant's own work is the very `run_unit` of the in-process runner: same tenant lock, timeouts and
ledger writes.
"""

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine, exists, select, text, update

from tenants.core.clock import utcnow
from tenants.core.control_schema import dispatched_runs, dispatched_tenants, fleet_locks, migration_runs, tenant_results
from tenants.core.control_schema import tenants as tenants_table
from tenants.core.ledger import TenantResult, record_result, set_version
from tenants.core.tenancy import Tenancy
from tenants.fleet.errors import RunNotHere
from tenants.fleet.report import FAILURES
from tenants.fleet.run_status import NOT_STARTED, STOP_FAIL_FAST, STOP_MAX_DURATION
from tenants.fleet.tasks import UNIT_PREFIX
from tenants.fleet.units import read_back_result, run_unit

# Advisory-lock namespace of slot locks: the two-key form never meets a tenant's one-key lock.
SLOT_LOCK_NAMESPACE = 0x5450  # "TP"

_PAYLOADS: dict[str, dict] = {}
_BEATS: dict[str, float] = {}


@dataclass(frozen=True)
class Step:
    """What a step did, and what the task must do next."""

    outcome: str  # ran | recorded-before | stopped | run-closed
    result: TenantResult | None = None
    next_slug: str | None = None  # the slot's next tenant, whose task is still to be sent
    slot_done: bool = False  # no tenant of this slot is left to send


def slot_key(run_id: str, server: str, slot: int) -> int:
    """Return a signed 32-bit key for one slot of one run."""
    digest = hashlib.blake2b(f"{run_id}|{server}|{slot}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def payload(engine: Engine, run_id: str) -> dict:
    """Return the run-wide payload (unit, params, rendered SQL), read once per process."""
    if run_id not in _PAYLOADS:
        with engine.connect() as conn:
            row = conn.execute(select(dispatched_runs.c.unit, dispatched_runs.c.payload)
                               .where(dispatched_runs.c.run_id == run_id)).first()
        if row is None:
            raise RunNotHere(f"run {run_id} is not in this worker's control plane: check its DATABASE_URL")
        if len(_PAYLOADS) > 16:
            _PAYLOADS.clear()
        _PAYLOADS[run_id] = {"unit": row.unit, **json.loads(row.payload)}
    return _PAYLOADS[run_id]


def _ledger(tenancy: Tenancy) -> Engine:
    # The same engine the in-process runner writes results with (see core.engines, durable_commits).
    return tenancy.engines.get(tenancy.settings.control_url, durable_commits=False)


def _recorded(run_id: str, slug: str):  # type: ignore[no-untyped-def]
    r = tenant_results.c
    return exists().where(r.run_id == run_id, r.tenant_slug == slug)


def _successor(conn: Connection, run_id: str, row) -> tuple[str | None, bool]:  # type: ignore[no-untyped-def]
    """Return (the slot's next tenant if its task is still to be sent, whether the slot is done)."""
    d = dispatched_tenants.c
    nxt = conn.execute(select(d.tenant_slug, d.sent_at).where(
        d.run_id == run_id, d.server == row.server, d.slot == row.slot, d.planned == "pending",
        d.position > row.position).order_by(d.position).limit(1)).first()
    if nxt is None:
        return None, True
    if nxt.sent_at is not None or conn.execute(select(_recorded(run_id, nxt.tenant_slug))).scalar():
        return None, False
    return nxt.tenant_slug, False


def run_step(tenancy: Tenancy, run_id: str, slug: str) -> Step:
    """Run tenant `slug` of dispatched run `run_id` unless it has a result already; see the module doc."""
    engine = tenancy.control_engine
    run = payload(engine, run_id)
    d, t = dispatched_tenants.c, tenants_table
    with engine.connect() as conn:
        row = conn.execute(select(d.server, d.slot, d.position, d.params, t.c.database_url)
                           .select_from(dispatched_tenants.outerjoin(t, t.c.slug == d.tenant_slug))
                           .where(d.run_id == run_id, d.tenant_slug == slug)).first()
    if row is None:
        raise RunNotHere(f"tenant {slug!r} is not part of run {run_id}")
    with engine.connect() as conn, conn.begin():
        # The slot lock: held until this transaction ends, i.e. until the step is over or its worker dies.
        conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                     {"ns": SLOT_LOCK_NAMESPACE, "key": slot_key(run_id, row.server, row.slot)})
        status = conn.execute(select(migration_runs.c.status).where(migration_runs.c.id == run_id)).scalar()
        if conn.execute(select(_recorded(run_id, slug))).scalar():
            next_slug, done = _successor(conn, run_id, row)
            return Step("recorded-before", None, next_slug, done)
        if status != "running":
            return Step("run-closed", None, None, True)  # aborted (taken over as stale): leave it to the new run
        stop = _stop_reason(conn, run, run_id)
        if stop:
            _skip_rest(tenancy, conn, run_id, row, stop)
            return Step("stopped", None, None, True)
        params = {**run["params"], **json.loads(row.params or "{}")}
        rendered = run.get("rendered", {}).get(json.dumps(params.get("from")))
        if rendered is not None:
            params["rendered"] = rendered
        params["run_id"] = run_id
        # A migration or creation run again finds what the first did; a task begun before may have committed.
        if run["unit"].startswith(UNIT_PREFIX) and not _mark_task_begun(engine, conn, run_id, slug):
            result = read_back_result(tenancy.settings, slug, row.database_url, run["unit"], params,
                                      "its worker died (the task was delivered again)")
        else:
            result = run_unit(tenancy.settings, slug, row.database_url, run["unit"], params)
        record(tenancy, run_id, result)
        next_slug, done = _successor(conn, run_id, row)
        return Step("ran", result, next_slug, done)


def _mark_task_begun(engine: Engine, conn: Connection, run_id: str, slug: str) -> bool:
    """Mark the tenant's task begun and return True, or return False if a worker (now dead) had begun it.

    Read on `conn`, under the slot lock: a copy that waited on the lock sees the mark of the one that
    held it. Written on a connection of its own and committed at once: it outlives this step and its worker.
    """
    d = dispatched_tenants.c
    where = (d.run_id == run_id) & (d.tenant_slug == slug)
    if conn.execute(select(d.started_at).where(where)).scalar() is not None:
        return False
    with engine.begin() as mark:
        mark.execute(update(dispatched_tenants).where(where).values(started_at=utcnow()))
    return True


def _stop_reason(conn: Connection, run: dict, run_id: str) -> str | None:
    deadline = run.get("deadline")
    if deadline is not None and time.time() > deadline:
        return STOP_MAX_DURATION
    if run.get("fail_fast"):
        r = tenant_results.c
        failed = conn.execute(select(exists().where(r.run_id == run_id, r.status.in_(sorted(FAILURES))))).scalar()
        if failed:
            return STOP_FAIL_FAST
    return None


def _skip_rest(tenancy: Tenancy, conn: Connection, run_id: str, row, why: str) -> None:  # type: ignore[no-untyped-def]
    """Record this tenant and the rest of its slot as not started."""
    d = dispatched_tenants.c
    rest = conn.execute(select(d.tenant_slug, d.from_revision).where(
        d.run_id == run_id, d.server == row.server, d.slot == row.slot, d.planned == "pending",
        d.position >= row.position).order_by(d.position)).all()
    for slug, current in rest:
        if not conn.execute(select(_recorded(run_id, slug))).scalar():
            record(tenancy, run_id, TenantResult(slug, NOT_STARTED, current, None, 0.0, None, why))


def record(tenancy: Tenancy, run_id: str, result: TenantResult) -> None:
    """Write one result to the ledger, as FleetRun._record does, and keep the fleet lock alive."""
    ledger = _ledger(tenancy)
    record_result(ledger, run_id, result, utcnow() - timedelta(milliseconds=result.duration_ms))
    if result.status != "ok" and result.to_revision and result.to_revision != result.from_revision:
        with ledger.begin() as conn:  # partial progress: a flagged revision committed on its own
            set_version(conn, result.slug, result.to_revision, run_id)
    if time.monotonic() - _BEATS.get(run_id, 0.0) > 5:
        with ledger.begin() as conn:
            conn.execute(update(fleet_locks).where(fleet_locks.c.run_id == run_id).values(heartbeat_at=utcnow()))
        _BEATS[run_id] = time.monotonic()


def mark_sent(engine: Engine, run_id: str, slug: str) -> None:
    """Note that the task of a tenant was handed to the broker."""
    d = dispatched_tenants.c
    with engine.begin() as conn:
        conn.execute(update(dispatched_tenants).where(d.run_id == run_id, d.tenant_slug == slug)
                     .values(sent_at=utcnow()))
