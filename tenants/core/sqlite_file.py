"""A tenant in its own SQLite file; the file's write lock is the tenant lock."""

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from tenants.core.engines import Engines
from tenants.core.errors import ForeignKeyViolation, StorageUnavailable, TenantBusy, TenantExists
from tenants.core.storage import TenantStorage


class SqliteFileStorage(TenantStorage):
    """A tenant in its own SQLite file, `<tenant_dir>/<slug>.sqlite3`."""

    kind = "sqlite-file"
    dialect = "sqlite"

    def __init__(self, slug: str, path: Path, engines: Engines) -> None:
        self.path = Path(path)
        url = f"sqlite:///{self.path}"
        super().__init__(slug, url, engines.get(url))

    def describe(self) -> str:
        return f"file {self.path}"

    def exists(self) -> bool:
        return self.path.exists()

    def create(self, template: Path | None = None) -> None:
        """Create the empty file, or a byte copy of `template` (a tenant at head); raise TenantExists."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Exclusive creation: two processes cannot both believe they made the file.
            with open(self.path, "xb") as target:
                if template is not None:
                    with open(template, "rb") as source:
                        shutil.copyfileobj(source, target)
        except FileExistsError as e:
            raise TenantExists(f"tenant file {self.path} already exists") from e

    def drop(self) -> None:
        self.engine.dispose()
        self._unlink()

    def _unlink(self) -> None:
        # The file last: a journal left beside a deleted file would be rolled back into the next
        # file made at this path (a tenant created again with this slug).
        for suffix in ("-journal", "-wal", "-shm", ""):
            path = Path(str(self.path) + suffix)
            try:
                path.unlink(missing_ok=True)
            except OSError as e:
                raise StorageUnavailable(f"cannot delete tenant file {path}: {e.strerror}") from e

    @contextmanager
    def dropping(self, lock_timeout: float) -> Iterator[None]:
        # Deleting files is not transactional: the caller's block runs first, then the files go
        # while the write lock is held, so no other process is writing to them meanwhile.
        with ExitStack() as held:
            try:
                held.enter_context(self.begin(exclusive=True, lock_timeout=lock_timeout))
            except (DBAPIError, StorageUnavailable):
                # Not a database (a corrupt file), or gone already (a drop cut short): no process
                # can work in it, so there is no lock to take, and what is left goes.
                pass
            yield
            self._unlink()
        self.engine.dispose()

    @contextmanager
    def begin(self, *, exclusive: bool = False, lock_timeout: float = 5.0,
              timeouts: tuple[float, float] | None = None, revisions: bool = False,
              rehearse: bool = False) -> Iterator[Connection]:
        if not self.path.exists():
            raise StorageUnavailable(f"tenant file {self.path} is missing")
        with self.engine.connect() as conn:
            if exclusive:
                # BEGIN IMMEDIATE takes the file's write lock up front: it is the tenant lock.
                conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            raw = conn.connection.driver_connection
            # PRAGMA takes no bound parameters; the value is an int made here.
            raw.execute("PRAGMA busy_timeout = " + str(int(lock_timeout * 1000)))
            if revisions:
                # A batch revision rebuilds tables (copy, DROP, rename); with foreign keys on, the DROP
                # deletes every row first and ON DELETE CASCADE empties the tables that reference it.
                # The pragma is a no-op inside a transaction, so it is set before BEGIN.
                raw.execute("PRAGMA foreign_keys = OFF")
            try:
                try:
                    trans = conn.begin()
                except DBAPIError as e:
                    if "locked" in str(e.orig):
                        raise TenantBusy(f"tenant {self.slug!r} is locked by another process") from e
                    raise
                with trans:
                    yield conn
                    if revisions:
                        _check_foreign_keys(conn, self.slug)
                    if rehearse:
                        trans.rollback()
            finally:
                raw.execute("PRAGMA busy_timeout = 5000")
                if revisions:
                    raw.execute("PRAGMA foreign_keys = ON")


def _check_foreign_keys(conn: Connection, slug: str) -> None:
    """Raise ForeignKeyViolation if any row of the tenant references a row that is not there."""
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent = broken[0][0], broken[0][1], broken[0][2]
        raise ForeignKeyViolation(f"tenant {slug!r}: {len(broken)} row(s) break a foreign key, e.g. {table} row "
                                  f"{rowid} references a missing {parent} row; the migration was rolled back")
