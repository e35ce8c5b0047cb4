"""Tenant backups: take one before a destructive upgrade, list them, prune old ones (restore: restore.py).

Files live under `<backup dir>/<run id>/<slug>-<time>.<ext>` (default backup dir:
`<instance>/backups`) and each is recorded in the control plane's `backups` table.
PostgreSQL tenants: `<ext>` = `pgdump.sql` (pg_dump --schema) or `copy/` (COPY export when
pg_dump is missing or older than the server). SQLite tenants: `sqlite3` (online backup API).
"""

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, insert, select

from tenants.core.clock import utcnow
from tenants.core.control_schema import backups
from tenants.core.pg_schema import PostgresSchemaStorage
from tenants.core.settings import PROJECT_ROOT
from tenants.core.sqlite_file import SqliteFileStorage
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.safety.backups import pg as backup_pg
from tenants.safety.backups.sqlite import backup_file
from tenants.safety.errors import BackupFailed, BackupNotFound, InvalidBackupSetting

DEFAULT_KEEP_DAYS = 30.0
METHODS = ("auto", "pg_dump", "copy")


@dataclass(frozen=True)
class Backup:
    """One recorded backup."""

    id: int
    run_id: str | None
    tenant_slug: str
    revision: str | None
    path: str
    size_bytes: int | None
    created_at: datetime

    @property
    def method(self) -> str:
        """How it was taken: pg_dump, copy or sqlite."""
        if self.path.endswith(".pgdump.sql"):
            return "pg_dump"
        return "copy" if self.path.endswith(".copy") else "sqlite"

    def to_dict(self) -> dict:
        """Return the backup as JSON-ready data."""
        return {**self.__dict__, "method": self.method, "created_at": self.created_at.isoformat()}


def backup_root() -> Path:
    """Return the backup directory: PORTAL_BACKUP_DIR, else `<PORTAL_INSTANCE_PATH or instance>/backups`."""
    if os.environ.get("PORTAL_BACKUP_DIR"):
        return Path(os.environ["PORTAL_BACKUP_DIR"])
    return Path(os.environ.get("PORTAL_INSTANCE_PATH") or PROJECT_ROOT / "instance") / "backups"


def keep_days_setting() -> float:
    """Return the retention in days from PORTAL_BACKUP_KEEP_DAYS (default 30)."""
    raw = os.environ.get("PORTAL_BACKUP_KEEP_DAYS", str(DEFAULT_KEEP_DAYS))
    try:
        days = float(raw)
    except ValueError:
        days = -1.0
    if days < 0:
        raise InvalidBackupSetting(f"PORTAL_BACKUP_KEEP_DAYS={raw!r} is not a number of days >= 0")
    return days


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _destination(storage: TenantStorage, base: Path, method: str) -> tuple[str, Path]:
    """Pick the method (auto: pg_dump when it fits the server) and the file or folder it writes."""
    if isinstance(storage, SqliteFileStorage):
        return "sqlite", base.with_name(base.name + ".sqlite3")
    if not isinstance(storage, PostgresSchemaStorage):
        raise TypeError(f"no backup method for {storage.kind}")
    if not storage.exists():
        raise FileNotFoundError(f"schema {storage.describe()} is missing")
    if method == "auto":
        with storage.engine.connect() as conn:
            method = "pg_dump" if backup_pg.pg_dump_usable(conn) else "copy"
    return method, base.with_name(base.name + (".pgdump.sql" if method == "pg_dump" else ".copy"))


def _take(storage: TenantStorage, method: str, dest: Path, lock_timeout: float) -> str | None:
    if method == "sqlite":
        return backup_file(storage, dest, lock_timeout)  # type: ignore[arg-type]
    if method == "pg_dump":
        return backup_pg.dump_schema(storage, dest, lock_timeout)  # type: ignore[arg-type]
    return backup_pg.export_copy(storage, dest, lock_timeout)  # type: ignore[arg-type]


def backup_tenant(tenancy: Tenancy, slug: str, run_id: str | None, *, directory: Path | None = None,
                  method: str = "auto") -> Backup:
    """Back up one tenant and record it; raise BackupFailed (nothing left behind) if it cannot be done.

    The upgrade runner calls this per tenant before migrating it; on BackupFailed it skips
    that tenant's upgrade and reports why.
    """
    if method not in METHODS:
        raise BackupFailed(slug, f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    storage = tenancy.storage(slug)
    folder = (directory or backup_root()) / (run_id or "manual")
    base = folder / f"{slug}-{utcnow().strftime('%Y%m%dT%H%M%S%fZ')}"
    dest: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        method, dest = _destination(storage, base, method)
        revision = _take(storage, method, dest, tenancy.settings.lock_timeout)
        now = utcnow()
        with tenancy.control_engine.begin() as conn:
            done = conn.execute(insert(backups).values(
                run_id=run_id, tenant_slug=slug, revision=revision, path=str(dest), size_bytes=_size(dest),
                created_at=now))
            backup_id = done.inserted_primary_key[0]
    except Exception as e:
        if dest is not None:
            _remove(dest)
        message = str(e).strip().splitlines()
        raise BackupFailed(slug, message[0] if message else type(e).__name__) from e
    return Backup(backup_id, run_id, slug, revision, str(dest), _size(dest), now)


def list_backups(tenancy: Tenancy, slug: str | None = None) -> list[Backup]:
    """Return recorded backups, newest first, optionally of one tenant."""
    query = select(backups).order_by(backups.c.created_at.desc(), backups.c.id.desc())
    if slug:
        query = query.where(backups.c.tenant_slug == slug)
    with tenancy.control_engine.connect() as conn:
        return [Backup(**row._mapping) for row in conn.execute(query)]


def get_backup(tenancy: Tenancy, ref: str | int) -> Backup:
    """Return the backup with this id (or path); raise BackupNotFound."""
    column = backups.c.id if str(ref).isdigit() else backups.c.path
    value = int(ref) if str(ref).isdigit() else str(ref)
    with tenancy.control_engine.connect() as conn:
        row = conn.execute(select(backups).where(column == value)).first()
    if row is None:
        raise BackupNotFound(f"no backup {ref!r}: see 'manage.py backups'")
    return Backup(**row._mapping)


def prune_backups(tenancy: Tenancy, keep_days: float, now: datetime | None = None) -> list[Backup]:
    """Delete the files and records of backups older than `keep_days`; return what was removed."""
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    with tenancy.control_engine.connect() as conn:
        rows = [Backup(**r._mapping) for r in conn.execute(select(backups).where(backups.c.created_at < cutoff))]
    for backup in rows:
        path = Path(backup.path)
        _remove(path)
        with tenancy.control_engine.begin() as conn:
            conn.execute(delete(backups).where(backups.c.id == backup.id))
        try:
            path.parent.rmdir()  # the run's folder, once empty
        except OSError:
            pass
    return rows

