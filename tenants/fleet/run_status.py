"""A run as the ledger tells it: its results so far, its report, and closing it when complete.

A run handed to Celery has no process that waits for it; whoever sees its last result (the
worker that wrote it, the waiting command, `run-status`) closes the run row exactly once, with
the same status and counts the in-process runner would give, and frees the fleet lock.
"""

import json

from sqlalchemy import Connection, Engine, and_, delete, exists, func, select, update

from tenants.core.clock import aware, utcnow
from tenants.core.control_schema import dispatched_tenants, fleet_locks, migration_runs, tenant_results
from tenants.core.ledger import TenantResult
from tenants.core.registry import Tenant
from tenants.fleet.errors import UnknownRun
from tenants.fleet.report import RunReport, results_status
from tenants.migrate.plan import Plan, TenantPlan

# A dispatched tenant that was never started is recorded as `skipped`, its detail saying why.
NOT_STARTED = "skipped"
STOP_MAX_DURATION, STOP_FAIL_FAST, STOP_DISPATCH = "not started: max-duration", "not started: fail-fast", \
    "not started: dispatch failed"


def result_from_row(row) -> TenantResult:  # type: ignore[no-untyped-def]
    """Turn a tenant_results row into a TenantResult."""
    return TenantResult(row.tenant_slug, row.status, row.from_revision, row.to_revision, row.duration_ms or 0.0,
                        row.error, row.detail)


def results_since(engine: Engine, run_id: str, after_id: int = 0) -> list[tuple[int, TenantResult]]:
    """Return the run's results recorded after result id `after_id`, oldest first."""
    c = tenant_results.c
    with engine.connect() as conn:
        rows = conn.execute(select(tenant_results).where(c.run_id == run_id, c.id > after_id).order_by(c.id))
        return [(row.id, result_from_row(row)) for row in rows]


def run_row(engine: Engine, run_id: str):  # type: ignore[no-untyped-def]
    """Return the migration_runs row or raise UnknownRun."""
    with engine.connect() as conn:
        row = conn.execute(select(migration_runs).where(migration_runs.c.id == run_id)).first()
    if row is None:
        raise UnknownRun(f"unknown run {run_id!r}: no such run in this control plane (DATABASE_URL)")
    return row


def _stub(slug: str) -> Tenant:
    return Tenant(slug, slug, "active", None, None, utcnow())


def _load(engine: Engine, run_id: str) -> tuple[RunReport, list[TenantResult]]:
    run = run_row(engine, run_id)
    d = dispatched_tenants.c
    with engine.connect() as conn:
        planned = conn.execute(select(d.tenant_slug, d.planned, d.from_revision, d.note)
                               .where(d.run_id == run_id).order_by(d.tenant_slug)).all()
    results = [result for _, result in results_since(engine, run_id)]
    items = [TenantPlan(_stub(slug), kind, current, error=note)
             for slug, kind, current, note in planned if kind != "left-out"]
    skipped = [(slug, note or "left out") for slug, kind, _, note in planned if kind == "left-out"]
    if not planned:  # a run of the in-process runner: its plan was not kept, its results were
        items = [TenantPlan(_stub(slug), "pending") for slug in dict.fromkeys(r.slug for r in results)]
    report = RunReport(run.kind, run.target, Plan(run.kind, run.target, None, items, skipped),
                       status=run.status, run_id=run_id)
    # A tenant's last result stands (a slot sent again may record two); the report counts each tenant once.
    for result in {result.slug: result for result in results}.values():
        if result.status == NOT_STARTED:
            report.not_started.append(result.slug)
        else:
            report.add(result)
    started = aware(run.started_at) if run.started_at else None
    finished = aware(run.finished_at) if run.finished_at else None
    report.duration_s = ((finished or utcnow()) - started).total_seconds() if started else 0.0
    details = {r.detail for r in results if r.status == NOT_STARTED}
    if STOP_MAX_DURATION in details:
        report.notes.append("--max-duration reached: no new tenant started")
    if STOP_FAIL_FAST in details:
        report.notes.append("--fail-fast: a tenant failed, no other tenant was started")
    if STOP_DISPATCH in details:
        report.notes.append("some tenants were not started: their tasks could not be sent to the broker")
    return report, results


def load_report(engine: Engine, run_id: str) -> RunReport:
    """Rebuild a run's report from the ledger: its plan (if dispatched), results and status."""
    return _load(engine, run_id)[0]


def final_status(results: list[TenantResult]) -> str:
    """Return the status the in-process runner gives these results (see FleetRun._status)."""
    final = {r.slug: r for r in results}.values()
    if any(r.status == NOT_STARTED and r.detail == STOP_MAX_DURATION for r in final):
        return "stopped"
    return results_status(r.status for r in final)


def missing_results(conn: Connection, run_id: str) -> int:
    """Count the dispatched run's tenants (pending or unreadable) that have no result yet."""
    d, r = dispatched_tenants.c, tenant_results.c
    has_result = exists().where(r.run_id == run_id, r.tenant_slug == d.tenant_slug)
    return conn.execute(select(func.count()).select_from(dispatched_tenants).where(
        d.run_id == run_id, d.planned.in_(("pending", "error")), ~has_result)).scalar() or 0


def finalise_if_complete(engine: Engine, run_id: str) -> str | None:
    """Close a dispatched run once every tenant has a result; return its status (None: not yet).

    Only the first caller changes the run row (its status is still `running`) and frees the
    fleet lock the run holds; later callers change nothing. A run taken over as stale stays aborted.
    """
    with engine.connect() as conn:
        if missing_results(conn, run_id):
            return None
    report, results = _load(engine, run_id)
    if report.status != "running":
        return report.status
    status = final_status(results)
    counts = report.ledger_counts()
    with engine.begin() as conn:
        closed = conn.execute(update(migration_runs).where(
            migration_runs.c.id == run_id, migration_runs.c.status == "running").values(
            status=status, finished_at=utcnow(),
            **{f"tenants_{k}": v for k, v in counts.items()}))
        if closed.rowcount:
            conn.execute(delete(fleet_locks).where(fleet_locks.c.run_id == run_id))
            return status
    return run_row(engine, run_id).status


def progress(engine: Engine, run_id: str) -> dict:
    """Return how far a dispatched run is: tenants by their last result's status, and tenants waiting per server."""
    d, r = dispatched_tenants.c, tenant_results.c
    has_result = exists().where(r.run_id == run_id, r.tenant_slug == d.tenant_slug)
    with engine.connect() as conn:
        waiting = conn.execute(select(d.server, func.count()).where(
            d.run_id == run_id, d.planned == "pending", ~has_result).group_by(d.server)).all()
        # A tenant's last result stands (a slot sent again may record two): count that one alone, as the report does.
        last = select(func.max(r.id)).where(r.run_id == run_id).group_by(r.tenant_slug)
        statuses = conn.execute(select(r.status, func.count()).where(r.id.in_(last)).group_by(r.status)).all()
        started = conn.execute(select(func.count()).select_from(dispatched_tenants).where(and_(
            d.run_id == run_id, d.planned == "pending", d.sent_at.is_not(None), ~has_result))).scalar()
    return {"waiting": {server: count for server, count in waiting}, "results": dict(statuses),
            "under_way": started}


def run_summary(engine: Engine, run_id: str) -> dict:
    """Return the run as a dict (the JSON of `run-status`, and what the console shows)."""
    finalise_if_complete(engine, run_id)
    report = load_report(engine, run_id)
    summary = report.to_dict()
    summary["options"] = json.loads(run_row(engine, run_id).options or "{}")
    if report.status == "running":
        summary["progress"] = progress(engine, run_id)
    return summary
