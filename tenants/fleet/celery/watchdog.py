"""The watchdog of a run handed to Celery: a slot that makes no progress is sent again once, then failed.

A slot stalls when the message of its next tenant is lost (a broker without persistence, a
purge) or its task died on an error outside the retry list. The watchdog sees it as: the slot's
next tenant has no result, no worker holds the slot's lock, and nothing happened in the slot
(dispatch, a task sent, a result) for `stall_after` seconds. It sends that tenant's task again
(tasks are idempotent: a tenant with a result is never run twice). If the slot is still stalled
`stall_after` later and no step of the run is under way anywhere, its remaining tenants are
recorded as failed with the reason, so the run closes with a truthful record.

The waiting command and `run-status` run it; it decides under each slot's lock, so a worker
that picks the slot up meanwhile either runs first or finds the tenant recorded.
"""

from datetime import datetime, timedelta

from sqlalchemy import Connection, exists, select, text, update

from tenants.core.clock import aware, utcnow
from tenants.core.control_schema import dispatched_runs, dispatched_tenants, migration_runs, tenant_results
from tenants.core.ledger import TenantResult
from tenants.core.tenancy import Tenancy
from tenants.fleet.celery.relay import SLOT_LOCK_NAMESPACE, record, slot_key
from tenants.fleet.run_status import finalise_if_complete

MAX_RESENDS = 1


def _last_progress(conn: Connection, run_id: str) -> tuple[list, dict[tuple[str, int], datetime]]:
    """Return the slots' next tenants (rows) and when each slot last showed progress."""
    d, r = dispatched_tenants.c, tenant_results.c
    created = conn.execute(select(dispatched_runs.c.created_at).where(dispatched_runs.c.run_id == run_id)).scalar()
    if created is None:
        return [], {}  # a run of the in-process runner: nothing was sent
    created = aware(created)
    has_result = exists().where(r.run_id == run_id, r.tenant_slug == d.tenant_slug)
    waiting = conn.execute(select(d.tenant_slug, d.server, d.slot, d.position, d.from_revision, d.sent_at, d.resent)
                           .where(d.run_id == run_id, d.planned == "pending", ~has_result)
                           .order_by(d.server, d.slot, d.position)).all()
    nexts: dict[tuple[str, int], object] = {}
    for row in waiting:
        nexts.setdefault((row.server, row.slot), row)
    progress = {key: max(created, aware(row.sent_at) if row.sent_at else created) for key, row in nexts.items()}
    ended = conn.execute(select(d.server, d.slot, r.started_at, r.duration_ms)
                         .join(tenant_results, (r.run_id == d.run_id) & (r.tenant_slug == d.tenant_slug))
                         .where(d.run_id == run_id, d.planned == "pending")).all()
    for server, slot, started, ms in ended:
        if (server, slot) in progress:
            end = aware(started) + timedelta(milliseconds=ms or 0)
            progress[(server, slot)] = max(progress[(server, slot)], end)
    return list(nexts.values()), progress


def watch_run(tenancy: Tenancy, run_id: str, stall_after: float) -> list[str]:
    """Send again, or record as failed, the stalled slots of a running dispatched run; return notes."""
    engine = tenancy.control_engine
    notes: list[str] = []
    with engine.connect() as conn:
        status = conn.execute(select(migration_runs.c.status).where(migration_runs.c.id == run_id)).scalar()
        if status != "running":
            return notes
        nexts, progress = _last_progress(conn, run_id)
    now = utcnow()
    failed = False
    with engine.connect() as conn, conn.begin():
        # Each slot lock taken here is held until this transaction ends: no step of it starts meanwhile.
        free = {(row.server, row.slot): conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
            {"ns": SLOT_LOCK_NAMESPACE, "key": slot_key(run_id, row.server, row.slot)}).scalar() for row in nexts}
        under_way = not all(free.values())
        for row in nexts:
            key = (row.server, row.slot)
            idle = (now - progress[key]).total_seconds()
            if not free[key] or idle < stall_after:
                continue
            if row.resent < MAX_RESENDS:
                from tenants.fleet.celery.tasks import send_tenant  # Celery loads only where it is needed

                try:
                    send_tenant(run_id, row.tenant_slug)
                except Exception as e:  # the broker is away too: say so, try again next time
                    reason = str(e).strip().splitlines()
                    notes.append(f"slot {row.slot} of {row.server}: could not send the task of {row.tenant_slug} "
                                 f"again ({reason[0] if reason else type(e).__name__})")
                    continue
                conn.execute(update(dispatched_tenants).where(
                    dispatched_tenants.c.run_id == run_id, dispatched_tenants.c.tenant_slug == row.tenant_slug)
                    .values(sent_at=utcnow(), resent=row.resent + 1))
                notes.append(f"slot {row.slot} of {row.server}: no progress for {idle:.0f} s; "
                             f"sent the task of {row.tenant_slug} again")
            elif not under_way:
                _fail_slot(tenancy, conn, run_id, row, idle)
                notes.append(f"slot {row.slot} of {row.server}: no progress for {idle:.0f} s after its task was "
                             "sent again: its tenants were recorded as failed")
                failed = True
    if failed:
        finalise_if_complete(engine, run_id)
    return notes


def _fail_slot(tenancy: Tenancy, conn: Connection, run_id: str, row, idle: float) -> None:  # type: ignore[no-untyped-def]
    d, r = dispatched_tenants.c, tenant_results.c
    has_result = exists().where(r.run_id == run_id, r.tenant_slug == d.tenant_slug)
    rest = conn.execute(select(d.tenant_slug, d.from_revision).where(
        d.run_id == run_id, d.server == row.server, d.slot == row.slot, d.planned == "pending",
        d.position >= row.position, ~has_result).order_by(d.position)).all()
    reason = (f"no worker ran the task of slot {row.slot} of {row.server} for {idle:.0f} s, also after it was "
              "sent again (a lost message, a task that died, or no worker up): not started; the tenant is "
              "unchanged, run the fleet again")
    for slug, current in rest:
        record(tenancy, run_id, TenantResult(slug, "failed", current, None, 0.0, f"tenant {slug!r}: {reason}"))
