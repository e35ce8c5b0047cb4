"""Put a tenant back to a backup: schema, rows and alembic_version, in one step, recorded as a run."""

import time
from dataclasses import dataclass
from pathlib import Path

from tenants.core.sqlite_file import SqliteFileStorage
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control
from tenants.migrate.errors import InvalidRevision
from tenants.migrate.lifecycle import run_single
from tenants.migrate.migrator import MigrationOutcome, current_revision, resolve_target
from tenants.safety.backups import pg as backup_pg
from tenants.safety.backups.sqlite import restore_file
from tenants.safety.backups.store import Backup, backup_tenant
from tenants.safety.errors import BackupFailed, BackupNotFound


@dataclass(frozen=True)
class Restored:
    outcome: MigrationOutcome
    kept: Backup | None  # the tenant's state just before the restore, unless the caller declined it


def restore_tenant(tenancy: Tenancy, slug: str, backup: Backup, started_by: str | None = None, *,
                   keep_current: bool = True) -> Restored:
    """Put the tenant back to the backup: schema, rows and alembic_version; record a `restore-tenant` run.

    A restore replaces every row written since the backup, so by default the current state is
    backed up first (the guard's backup before data loss): a restore of the wrong backup can
    itself be undone. If that backup fails nothing is restored; `keep_current=False` skips it,
    for a tenant too broken to back up.
    """
    ensure_control(tenancy)
    tenancy.registry.get(slug)
    if backup.tenant_slug != slug:
        raise BackupNotFound(f"backup {backup.id} belongs to tenant {backup.tenant_slug!r}, not {slug!r}")
    path = Path(backup.path)
    if not path.exists():
        raise BackupNotFound(f"backup {backup.id}: {path} is missing")
    if backup.method == "copy" and backup.revision is not None:
        try:
            resolve_target(tenancy.scripts, backup.revision)
        except InvalidRevision as e:
            raise BackupNotFound(f"backup {backup.id} is at {backup.revision}, which the chain no longer has") from e
    kept = None
    if keep_current:
        try:
            kept = backup_tenant(tenancy, slug, None)
        except BackupFailed as e:
            raise BackupFailed(slug, f"{e.reason}; nothing was restored (--no-backup restores without keeping "
                                     "the current state)") from e
    outcome = run_single(tenancy, "restore-tenant", slug, backup.revision,
                         lambda storage: _restore(tenancy, storage, backup, path), started_by)
    return Restored(outcome, kept)


def _restore(tenancy: Tenancy, storage: TenantStorage, backup: Backup, path: Path) -> MigrationOutcome:
    started = time.perf_counter()
    try:
        before = current_revision(storage)
    except Exception:  # a broken tenant is what a restore is for
        before = None
    lock_timeout = tenancy.settings.lock_timeout
    if isinstance(storage, SqliteFileStorage):
        if backup.method != "sqlite":
            raise BackupNotFound(f"backup {backup.id} is a PostgreSQL backup; tenant {storage.slug!r} is SQLite")
        after = restore_file(storage, path, lock_timeout)
    else:
        if backup.method == "sqlite":
            raise BackupNotFound(f"backup {backup.id} is a SQLite file; tenant {storage.slug!r} is PostgreSQL")
        with storage.begin(exclusive=True, lock_timeout=lock_timeout) as conn:
            if backup.method == "pg_dump":
                backup_pg.restore_dump(storage, conn, path)
            else:
                backup_pg.restore_copy(storage, conn, path, tenancy.scripts)
        after = current_revision(storage)
    return MigrationOutcome(storage.slug, before, after, [], (time.perf_counter() - started) * 1000)
