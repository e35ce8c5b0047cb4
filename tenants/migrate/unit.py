"""Migrate one tenant as one unit of work: replayed SQL where it can, Alembic online where it must.

`migrate_tenant_unit` never raises for the tenant's own failure: it returns a TenantResult, so
the fleet runner, a Celery task or a single-tenant command can record it as it is.
"""

import time
import traceback

from sqlalchemy.exc import DBAPIError

from tenants.core.autocommit import autocommit_session
from tenants.core.errors import StorageUnavailable, TenantBusy, TenantError
from tenants.core.ledger import TenantResult
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.migrate import driver
from tenants.migrate.errors import MigrationFailed, MigrationTimeout
from tenants.migrate.migrator import (
    TIMEOUT_SQLSTATES,
    MigrationOutcome,
    alembic_options,
    current_revision,
    migrate_tenant,
)
from tenants.migrate.replay import replay


def failure(slug: str, error: BaseException, started: float, from_revision: str | None = None,
            reached: str | None = None) -> TenantResult:
    """Build the result of a failed unit; `reached` is the revision committed before the failure."""
    db_code = getattr(getattr(error, "orig", None), "pgcode", None)
    if isinstance(error, MigrationTimeout) or (isinstance(error, DBAPIError) and db_code in TIMEOUT_SQLSTATES):
        status = "timeout"
    elif isinstance(error, TenantBusy):
        status = "busy"
    elif isinstance(error, StorageUnavailable):
        status = "unreachable"
    else:
        status = "failed"
    if isinstance(error, TenantError):
        message = str(error)
    elif isinstance(error, DBAPIError):
        lines = str(error.orig).strip().splitlines()
        message = f"tenant {slug!r}: {lines[0] if lines else type(error.orig).__name__}"
    else:
        message = f"tenant {slug!r}: {type(error).__name__}: {error}"
    return TenantResult(slug, status, from_revision, reached, (time.perf_counter() - started) * 1000,
                        message, "".join(traceback.format_exception(error)))


def migration_read_back(storage: TenantStorage, params: dict, event: str, wait_s: float) -> TenantResult:
    """The result of a migration that ended without one (`event`: its worker died, Ctrl-C), read from the tenant.

    The migration's transaction ends when its server session ends it: at once for Ctrl-C in this
    process, or when a dead worker's session sees the connection closed (after the statement under
    way, if it ran one). Holding the tenant's lock (waited for up to `wait_s`) means that
    transaction has ended, so the version read then is final: at the target, the tenant committed
    and is `ok`; anywhere else it `failed` (unchanged, or where a revision run outside a
    transaction left it).
    """
    slug, from_rev, target = storage.slug, params.get("from"), params["target"]
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                with storage.begin(exclusive=True, lock_timeout=wait_s, timeouts=(wait_s, wait_s)) as conn:
                    now = driver.current_revision(conn, alembic_options(storage))
                break
            except TenantBusy:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    except Exception as error:  # unreadable or still locked: nothing says it committed
        return TenantResult(slug, "failed", from_rev, None, 0.0,
                            f"tenant {slug!r}: {event}; its version could not be read back ({error})")
    if now == target and now != from_rev:
        return TenantResult(slug, "ok", from_rev, now, 0.0, None,
                            f"committed; then {event} (its version read back from the tenant)")
    if now == from_rev:
        return TenantResult(slug, "failed", from_rev, None, 0.0,
                            f"tenant {slug!r}: {event} before it committed; the tenant is unchanged")
    return TenantResult(slug, "failed", from_rev, now, 0.0,
                        f"tenant {slug!r}: {event} before it reached {target or 'base'}; it is at {now or 'base'}")


def timeouts(tenancy: Tenancy, params: dict) -> tuple[float, float]:
    """Return (lock_timeout, statement_timeout) from the run's params, else the settings'."""
    s = tenancy.settings
    return params.get("lock_timeout") or s.lock_timeout, params.get("statement_timeout") or s.statement_timeout


def migrate_tenant_unit(tenancy: Tenancy, storage: TenantStorage, params: dict) -> TenantResult:
    """Move one tenant to params['target'], in as few transactions as its revisions allow.

    params: target, downgrade, from (planned current revision), outside (revisions that must
    run outside a transaction), rendered (SQL for the planned range, for the replay fast path),
    rehearse (run it all in the tenant's transaction, then roll back: the result says what would happen).
    """
    started = time.perf_counter()
    lock_timeout, statement_timeout = timeouts(tenancy, params)
    target, downgrade = params["target"], params.get("downgrade", False)
    from_rev = params.get("from")
    outside = set(params.get("outside") or ())
    rehearse = bool(params.get("rehearse"))
    if rehearse and outside:
        # Work outside a transaction cannot be rolled back: it is never rehearsed.
        return TenantResult(storage.slug, "skipped", from_rev, from_rev, 0.0, None,
                            f"not rehearsed: {', '.join(sorted(outside))} must run outside a transaction")
    if not outside:
        outcome, how = None, "replayed SQL"
        if params.get("rendered") is not None:
            outcome = replay(storage, params["rendered"], from_rev, target, lock_timeout=lock_timeout,
                             statement_timeout=statement_timeout, rehearse=rehearse)
        if outcome is None:
            how = "Alembic online"
            outcome = migrate_tenant(storage, tenancy.scripts, target, downgrade=downgrade, lock_timeout=lock_timeout,
                                     statement_timeout=statement_timeout, rehearse=rehearse)
        if rehearse:
            would = f"would succeed: {', '.join(outcome.applied) or 'nothing to apply'} ({how}, rolled back)"
            return TenantResult(outcome.slug, "ok", outcome.from_revision, outcome.from_revision,
                                (time.perf_counter() - started) * 1000, None, would)
        return _ok(outcome, started, how)
    # Segments: runs of ordinary revisions share one transaction; each flagged one runs alone.
    from_rev = current_revision(storage)
    reached = from_rev
    applied: list[str] = []
    try:
        for end, alone in _segments(tenancy, from_rev, target, downgrade, outside):
            if alone:
                outcome = run_outside_transaction(tenancy, storage, end, downgrade, lock_timeout, statement_timeout)
            else:
                outcome = migrate_tenant(storage, tenancy.scripts, end, downgrade=downgrade,
                                         lock_timeout=lock_timeout, statement_timeout=statement_timeout)
            applied += outcome.applied
            reached = outcome.to_revision
    except Exception as error:
        return failure(storage.slug, error, started, from_rev, reached if reached != from_rev else None)
    return _ok(MigrationOutcome(storage.slug, from_rev, reached, applied), started,
               f"Alembic online, {', '.join(sorted(outside))} outside a transaction")


def _ok(outcome: MigrationOutcome, started: float, how: str) -> TenantResult:
    detail = f"applied {', '.join(outcome.applied)} ({how})" if outcome.applied else "already at target"
    return TenantResult(outcome.slug, "ok", outcome.from_revision, outcome.to_revision,
                        (time.perf_counter() - started) * 1000, None, detail)


def _segments(tenancy: Tenancy, from_rev: str | None, target: str | None, downgrade: bool,
              outside: set[str]) -> list[tuple[str | None, bool]]:
    """Split the path from `from_rev` to `target` into (end revision, runs alone) segments."""
    steps = driver.steps_between(tenancy.scripts, from_rev, target, downgrade=downgrade)
    if downgrade:
        # Taking revision r back ends at r's parent.
        path = [(step.revision.revision, step.revision.down_revision) for step in steps]
    else:
        path = [(step.revision.revision, step.revision.revision) for step in steps]
    segments: list[tuple[str | None, bool]] = []
    for revision, end in path:
        alone = revision in outside
        if segments and not alone and not segments[-1][1]:
            segments[-1] = (end, False)
        else:
            segments.append((end, alone))
    return segments


def run_outside_transaction(tenancy: Tenancy, storage: TenantStorage, end: str | None, downgrade: bool,
                            lock_timeout: float, statement_timeout: float) -> MigrationOutcome:
    """Run one flagged revision on an autocommit connection (PostgreSQL), under a session lock.

    The connection is thrown away afterwards, so its search_path, timeouts and advisory lock
    can never reach another tenant's work. On SQLite the revision simply gets its own transaction.
    """
    if storage.dialect != "postgresql":
        return migrate_tenant(storage, tenancy.scripts, end, downgrade=downgrade,
                              lock_timeout=lock_timeout, statement_timeout=statement_timeout)
    started = time.perf_counter()
    with autocommit_session(storage, lock_timeout, statement_timeout) as conn:
        opts = {**alembic_options(storage), "transactional_ddl": False}
        from_rev = driver.current_revision(conn, opts)
        steps = driver.steps_between(tenancy.scripts, from_rev, end, downgrade=downgrade)
        try:
            reached = driver.run_steps(conn, steps, opts)
        except DBAPIError as e:
            code = getattr(e.orig, "pgcode", None)
            error_class = MigrationTimeout if code in TIMEOUT_SQLSTATES else MigrationFailed
            message = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            failing = steps[0].revision.revision if steps else None
            raise error_class(storage.slug, failing, message + " (ran outside a transaction)") from e
        applied = [step.revision.revision for step in steps]
        return MigrationOutcome(storage.slug, from_rev, reached, applied, (time.perf_counter() - started) * 1000)
