"""Create, drop and move single tenants, with compensating clean-up and ledger records."""

import os
import re
import socket
import time
import traceback
from collections.abc import Callable

from tenants.core.clock import utcnow
from tenants.core.engines import check_database_url
from tenants.core.errors import InvalidUsage, StorageUnavailable, TenantError, TenantExists
from tenants.core.ledger import TenantResult, finish_run, record_result, start_run
from tenants.core.names import validate_slug
from tenants.core.processes import pid_alive
from tenants.core.registry import Tenant
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control
from tenants.migrate.errors import MigrationTimeout
from tenants.migrate.migrator import MigrationOutcome, migrate_tenant


def _failure_result(slug: str, from_rev: str | None, error: Exception, started: float) -> TenantResult:
    status = "timeout" if isinstance(error, MigrationTimeout) else (
        "unreachable" if isinstance(error, StorageUnavailable) else "failed")
    return TenantResult(slug, status, from_rev, None, (time.perf_counter() - started) * 1000,
                        str(error), "".join(traceback.format_exception(error)))


def run_single(tenancy: Tenancy, kind: str, slug: str, target: str | None,
               work: Callable[[TenantStorage], MigrationOutcome], started_by: str | None = None) -> MigrationOutcome:
    """Run one tenant's migration as a recorded run of its own; re-raise its failure."""
    storage = tenancy.storage(slug)
    engine = tenancy.control_engine
    run_id = start_run(engine, kind, target, started_by, {"tenant": slug}, total=1)
    started, began = time.perf_counter(), utcnow()
    try:
        outcome = work(storage)
    except TenantError as e:
        record_result(engine, run_id, _failure_result(slug, None, e, started), began)
        finish_run(engine, run_id, "failed", {"failed": 1})
        raise
    record_result(engine, run_id, TenantResult(slug, "ok", outcome.from_revision, outcome.to_revision,
                                               outcome.duration_ms), began)
    finish_run(engine, run_id, "ok", {"ok": 1})
    return outcome


MAX_NAME = 200  # tenants.display_name


def create_tenant(tenancy: Tenancy, slug: str, display_name: str | None = None,
                  database_url: str | None = None, started_by: str | None = None) -> Tenant:
    """Register a tenant, create its storage and bring it to head: all of it or none of it.

    A tenant left `failed` by an earlier attempt whose clean-up could not finish is retried.
    """
    validate_slug(slug)
    if display_name is not None and not 1 <= len(display_name) <= MAX_NAME:
        raise InvalidUsage(f"--name must be 1 to {MAX_NAME} characters, not {len(display_name)}; nothing was created")
    if database_url is not None:
        check_database_url(database_url)
    ensure_control(tenancy)
    registry = tenancy.registry
    existing = registry.find(slug)
    if existing is not None and existing.status == "provisioning" and not _abandoned(existing):
        raise TenantExists(f"tenant {slug!r} is {existing.status_reason or 'being created by another process'}; "
                           f"if that process died, run 'manage.py drop-tenant {slug} --yes' and create it again")
    if existing is not None and existing.status not in ("failed", "provisioning"):
        raise TenantExists(f"tenant {slug!r} already exists ({existing.status})")
    creator = (socket.gethostname(), os.getpid())
    if existing is None:
        registry.add(slug, display_name or slug.replace("_", " ").title(), database_url, creator)
    else:  # a failed or abandoned attempt: ours to finish
        registry.set_status(slug, "provisioning", f"being created by pid {creator[1]} on {creator[0]}")
    storage: TenantStorage | None = None
    created = False
    try:
        storage = tenancy.storage(slug)
        if existing is not None and storage.exists():
            storage.drop()  # what the failed attempt left behind is ours to remove
        storage.create()
        created = True
        s = tenancy.settings
        run_single(tenancy, "create-tenant", slug, "head",
                   lambda st: migrate_tenant(st, tenancy.scripts, "head", lock_timeout=s.lock_timeout,
                                             statement_timeout=s.statement_timeout), started_by)
    except BaseException as error:
        _undo_create(tenancy, storage, slug, created, error)
        raise
    registry.set_status(slug, "active")
    return registry.get(slug)


def _abandoned(tenant: Tenant) -> bool:
    """Return whether a `provisioning` row was left by a create-tenant process of this host that is gone."""
    found = re.fullmatch(r"being created by pid (\d+) on (.+)", tenant.status_reason or "")
    return bool(found) and found.group(2) == socket.gethostname() and not pid_alive(int(found.group(1)))


def _undo_create(tenancy: Tenancy, storage: TenantStorage | None, slug: str, created: bool,
                 error: BaseException) -> None:
    """Remove what a failed create made; if that fails too, leave the row `failed` with why."""
    try:
        if created and storage is not None:
            storage.drop()
        tenancy.registry.remove(slug)
    except Exception as cleanup_error:
        reason = f"create failed ({error}); clean-up failed ({cleanup_error}): run create-tenant again"
        try:
            tenancy.registry.set_status(slug, "failed", reason)
        except Exception:  # the control plane itself is gone; nothing more can be recorded
            pass


def drop_tenant(tenancy: Tenancy, slug: str) -> None:
    """Delete a tenant's storage and its registry row (its run history stays).

    A row that never got usable storage (`provisioning` or `failed` with a URL no engine takes) is
    simply removed.
    """
    tenant = tenancy.registry.get(slug)
    try:
        storage = tenancy.storage(tenant)
    except StorageUnavailable:
        if tenant.status not in ("provisioning", "failed"):
            raise
    else:
        storage.drop()
    tenancy.registry.remove(slug)

