"""Back up and restore one SQLite tenant file with SQLite's online backup API.

The API copies a consistent snapshot while other connections keep reading; copying every
page in one step makes the restore a single transaction on the tenant file.
"""

import sqlite3
import time
from pathlib import Path

from tenants.core.errors import TenantBusy
from tenants.core.sqlite_file import SqliteFileStorage


def _deadline(seconds: float, slug: str):  # type: ignore[no-untyped-def]
    """Return a backup progress callback that gives up when the file stays locked too long."""
    stop = time.monotonic() + seconds

    def progress(status: int, remaining: int, total: int) -> None:
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and time.monotonic() > stop:
            raise TenantBusy(f"tenant {slug!r} is locked by another process")

    return progress


def _copy(source: Path, target: Path, slug: str, lock_timeout: float) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=lock_timeout)
    try:
        dst = sqlite3.connect(target, timeout=lock_timeout)
        try:
            src.backup(dst, pages=-1, progress=_deadline(lock_timeout, slug), sleep=0.05)
        finally:
            dst.close()
    finally:
        src.close()


def _revision(path: Path) -> str | None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:  # no version table: the tenant is at base
        return None
    finally:
        conn.close()


def backup_file(storage: SqliteFileStorage, dest: Path, lock_timeout: float) -> str | None:
    """Copy the tenant's file to `dest`; return the revision the copy holds."""
    if not storage.exists():
        raise FileNotFoundError(f"tenant file {storage.path} is missing")
    _copy(storage.path, dest, storage.slug, lock_timeout)
    return _revision(dest)


def restore_file(storage: SqliteFileStorage, path: Path, lock_timeout: float) -> str | None:
    """Replace the tenant file's content with the backup, in one step; return the restored revision."""
    storage.engine.dispose()  # pooled connections must not keep pages of the old file
    _copy(path, storage.path, storage.slug, lock_timeout)
    return _revision(storage.path)
