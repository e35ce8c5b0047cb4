"""Provision and drop single tenants, with compensating clean-up and ledger records."""

import os
import re
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace

from tenants.core.backends import storage_for
from tenants.core.clock import utcnow
from tenants.core.engines import check_database_url
from tenants.core.errors import InvalidUsage, StorageUnavailable, TenantError, TenantExists
from tenants.core.ledger import TenantResult, current_actor, finish_run, record_result, start_run
from tenants.core.names import validate_slug
from tenants.core.processes import pid_alive
from tenants.core.registry import Tenant, TenantRegistry
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.migrate.errors import MigrationTimeout
from tenants.migrate.migrator import MigrationOutcome, current_revision
from tenants.migrate.templates import Template, bring_to_head, create_from
from tenants.migrate.unit import failure, timeouts


def _failure_result(slug: str, from_rev: str | None, error: BaseException, started: float) -> TenantResult:
    status = "timeout" if isinstance(error, MigrationTimeout) else (
        "unreachable" if isinstance(error, StorageUnavailable) else "failed")
    return TenantResult(slug, status, from_rev, None, (time.perf_counter() - started) * 1000,
                        str(error), "".join(traceback.format_exception(error)))


def run_single(tenancy: Tenancy, kind: str, slug: str, target: str | None,
               work: Callable[[TenantStorage], MigrationOutcome], started_by: str | None = None,
               storage: TenantStorage | None = None) -> MigrationOutcome:
    """Run one tenant's migration as a recorded run of its own; re-raise its failure.

    Any failure is recorded before it is raised, Ctrl-C (`interrupted`) and unexpected errors
    included: no run row is left `running`, which nothing would ever close.
    """
    storage = storage or tenancy.storage(slug)
    engine = tenancy.control_engine
    run_id = start_run(engine, kind, target, started_by, {"tenant": slug}, total=1)
    started, began = time.perf_counter(), utcnow()
    try:
        outcome = work(storage)
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        try:
            record_result(engine, run_id, _failure_result(slug, None, e, started), began)
            finish_run(engine, run_id, status, {"failed": 1})
        except Exception as recording:  # the control plane is gone too: the tenant's own error is the one raised
            e.add_note(f"its run {run_id} could not be closed: {recording}")
        raise
    record_result(engine, run_id, TenantResult(slug, "ok", outcome.from_revision, outcome.to_revision,
                                               outcome.duration_ms), began)
    finish_run(engine, run_id, "ok", {"ok": 1})
    return outcome


MAX_NAME = 200  # tenants.display_name


@dataclass(frozen=True)
class TenantSpec:
    """A tenant to create: its slug, and optionally a display name and its own database URL."""

    slug: str
    display_name: str | None = None
    database_url: str | None = None

    def check(self) -> None:
        """Refuse a bad slug, name or URL (InvalidUsage, InvalidTenantName) before anything is created."""
        validate_slug(self.slug)
        if self.display_name is not None and not 1 <= len(self.display_name) <= MAX_NAME:
            raise InvalidUsage(f"--name must be 1 to {MAX_NAME} characters, not {len(self.display_name)}; "
                               "nothing was created")
        if self.database_url is not None:
            check_database_url(self.database_url)

    def storage(self, tenancy: Tenancy) -> TenantStorage:
        """Return where the tenant will live (nothing is created)."""
        s = tenancy.settings
        return storage_for(self.slug, self.database_url, s.control_url, s.tenant_dir, tenancy.engines)


def provision_tenant(tenancy: Tenancy, spec: TenantSpec, template: Template | None, *, record: bool = True,
                     started_by: str | None = None, timeouts: tuple[float, float] | None = None,
                     ) -> tuple[Tenant, MigrationOutcome]:
    """Register a tenant, create its storage and bring it to head from `template`: all of it or none of it.

    The guarded entry points are in tenants.fleet.create (the creation gate comes with the template).
    With `record` the creation is a recorded run of its own; a fleet run records its tenants itself.
    A tenant left `failed` by an earlier attempt whose clean-up could not finish is retried.
    """
    slug = spec.slug
    control_url = tenancy.settings.control_url
    # A schema in the control database commits durably after its row, and PostgreSQL flushes the WAL in
    # order: that commit makes the row durable too, so the row need not wait for a flush of its own.
    same_server = (spec.database_url or control_url) == control_url
    registry = TenantRegistry(tenancy.engines.get(control_url, durable_commits=not same_server))
    creator = (socket.gethostname(), os.getpid())
    try:
        tenant = registry.add(slug, spec.display_name or slug.replace("_", " ").title(), spec.database_url, creator)
        existing = None
    except TenantExists:
        existing = registry.find(slug)
        if existing is None:
            raise
        if not ours_to_finish(existing):
            if existing.status == "provisioning":
                raise TenantExists(f"tenant {slug!r} is {existing.status_reason or 'being created by another process'}"
                                   f"; if that process died, run 'manage.py drop-tenant {slug} --yes' and create it "
                                   "again") from None
            raise TenantExists(f"tenant {slug!r} already exists ({existing.status})") from None
        registry.set_status(slug, "provisioning", f"being created by pid {creator[1]} on {creator[0]}")
        tenant = existing
    storage: TenantStorage | None = None
    created = False
    lock_timeout, statement_timeout = timeouts or (tenancy.settings.lock_timeout, tenancy.settings.statement_timeout)
    try:
        s = tenancy.settings
        storage = storage_for(slug, tenant.database_url, s.control_url, s.tenant_dir, tenancy.engines)
        if existing is not None and storage.exists():
            storage.drop()  # what the failed attempt left behind is ours to remove
        created = create_from(storage, template)

        def work(st: TenantStorage) -> MigrationOutcome:
            nonlocal created
            outcome = bring_to_head(st, tenancy.scripts, template, lock_timeout=lock_timeout,
                                    statement_timeout=statement_timeout)
            created = True  # committed: from here on a failure must take the storage back
            return outcome

        outcome = (run_single(tenancy, "create-tenant", slug, "head", work, started_by, storage) if record
                   else work(storage))
    except BaseException as error:
        _undo_create(tenancy, storage, slug, created, error)
        raise
    # Without waiting for the WAL flush (as the run ledger writes): a database crash that loses this
    # commit leaves the row `provisioning` by a process that is gone, which create-tenant finishes.
    TenantRegistry(tenancy.engines.get(control_url, durable_commits=False)).set_status(slug, "active")
    return replace(tenant, status="active", status_reason=None), outcome


def create_unit(tenancy: Tenancy, storage: TenantStorage, params: dict) -> TenantResult:
    """The fleet's unit of work that creates one tenant: its result, never its exception."""
    started = time.perf_counter()
    spec = TenantSpec(storage.slug, params.get("name"), params.get("database_url"))
    template: Template | None = params.get("template")
    try:
        _, outcome = provision_tenant(tenancy, spec, template, record=False, timeouts=timeouts(tenancy, params))
    except TenantError as error:
        return failure(storage.slug, error, started)
    how = "Alembic online" if template is None else (
        "copied the template at head" if template.path else "ran the template at head")
    return TenantResult(storage.slug, "ok", None, outcome.to_revision, (time.perf_counter() - started) * 1000,
                        None, f"created ({how})")


def creation_read_back(tenancy: Tenancy, storage: TenantStorage, params: dict, event: str) -> TenantResult:
    """The result of a creation that ended without one (`event`: its worker died, Ctrl-C), read from the registry.

    provision_tenant marks the row active only once the storage is at head, and undoes its work on
    any exception, Ctrl-C included: an active row is a finished creation, no row an undone one, and
    a row left `provisioning` (its process killed) is finished by creating the tenant again. A slug
    taken before the run (params['taken_before']) could only fail: its row is another tenant's.
    """
    slug = storage.slug
    if params.get("taken_before"):
        return TenantResult(slug, "failed", None, None, 0.0, f"tenant {slug!r} already exists; then {event}: "
                            "it is unchanged")
    try:
        tenant = tenancy.registry.find(slug)
        revision = current_revision(storage) if tenant is not None and tenant.status == "active" else None
    except Exception as error:  # unreadable: nothing says it was created
        return TenantResult(slug, "failed", None, None, 0.0,
                            f"tenant {slug!r}: {event}; its creation could not be read back ({error})")
    if tenant is None:
        return TenantResult(slug, "failed", None, None, 0.0, f"tenant {slug!r}: {event} before it was created; "
                            "nothing of it is left")
    if tenant.status == "active":
        return TenantResult(slug, "ok", None, revision, 0.0, None,
                            f"created; then {event} (read back from the registry)")
    return TenantResult(slug, "failed", None, None, 0.0, f"tenant {slug!r}: {event} while it was created; it is "
                        f"left {tenant.status}: 'manage.py create-tenant {slug}' finishes it")


def ours_to_finish(tenant: Tenant) -> bool:
    """Return whether creating `tenant`'s slug again finishes an earlier attempt (failed, or its process gone)."""
    return tenant.status == "failed" or (tenant.status == "provisioning" and _abandoned(tenant))


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
    simply removed. Raises TenantBusy, with nothing changed, while another process works in the tenant.
    """
    tenant = tenancy.registry.get(slug)
    try:
        storage = tenancy.storage(tenant)
    except StorageUnavailable:
        if tenant.status not in ("provisioning", "failed"):
            raise
    else:
        # Under the tenant's lock: no migration or task is under way in it. The row is marked before
        # the deletion is final, so a drop cut short (Ctrl-C, a lost control plane) leaves a `failed`
        # row that no run selects and that names the way out. Only the row read above is marked: a
        # tenant dropped and created again meanwhile holds the same schema or file name, and stays.
        with storage.dropping(tenancy.settings.lock_timeout):
            tenancy.registry.set_status(slug, "failed", f"being dropped by {current_actor()}; if that stopped, "
                                                        f"run 'manage.py drop-tenant {slug} --yes' again",
                                        created_at=tenant.created_at)
    tenancy.registry.remove(slug)

