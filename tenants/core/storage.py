"""Where a tenant's tables live: a PostgreSQL schema, or a SQLite file.

Every backend offers the same small interface; the rest of the code never asks which
one it holds. On PostgreSQL the tenant's schema is `tenant_<slug>` in the tenant's own
database when its record has a URL, else in the control database.
"""

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from tenants.core.driver_sql import driver_execute
from tenants.core.engines import Engines, display_url
from tenants.core.errors import ForeignKeyViolation, StorageUnavailable, TenantBusy, TenantExists
from tenants.core.names import lock_key, quoted_schema, schema_name, validate_slug


def unreachable(url: str, error: Exception) -> StorageUnavailable:
    """Build the one-line error for a database that cannot be reached."""
    reason = str(getattr(error, "orig", error)).strip().splitlines()
    return StorageUnavailable(f"cannot reach database {display_url(url)}: {reason[0] if reason else error}")


def unreadable(url: str, error: Exception) -> StorageUnavailable:
    """Build the one-line error for a database file that opens but cannot be read (a corrupt SQLite file)."""
    reason = str(getattr(error, "orig", error)).strip().splitlines()
    return StorageUnavailable(f"control database {display_url(url)} cannot be read: "
                              f"{reason[0] if reason else error}; restore it from a backup")


class TenantStorage:
    """The storage unit of one tenant."""

    kind = "abstract"
    dialect = "abstract"

    def __init__(self, slug: str, url: str, engine: Engine) -> None:
        self.slug = validate_slug(slug)
        self.url = url
        self.engine = engine

    @property
    def version_table_schema(self) -> str | None:
        """The schema Alembic keeps this tenant's `alembic_version` in."""
        return None

    def describe(self) -> str:
        """Say where the tenant lives, without secrets."""
        raise NotImplementedError

    def exists(self) -> bool:
        """Return whether the tenant's schema or file exists."""
        raise NotImplementedError

    def create(self) -> None:
        """Create the empty schema or file; raise TenantExists if it is there already."""
        raise NotImplementedError

    def drop(self) -> None:
        """Delete the schema or file with everything in it."""
        raise NotImplementedError

    @contextmanager
    def dropping(self, lock_timeout: float) -> Iterator[None]:
        """Delete the schema or file under the tenant's lock; the caller's block runs before the deletion is final.

        Raises TenantBusy, with nothing deleted, when another process holds the tenant's lock (or,
        on PostgreSQL, keeps one of its tables locked for `lock_timeout` seconds). An error in the
        caller's block deletes nothing.
        """
        raise NotImplementedError
        yield  # pragma: no cover

    def orm_bind(self) -> Engine:
        """Return a bind for ORM sessions that reads and writes this tenant only."""
        return self.engine

    @contextmanager
    def begin(self, *, exclusive: bool = False, lock_timeout: float = 5.0,
              timeouts: tuple[float, float] | None = None, revisions: bool = False,
              rehearse: bool = False) -> Iterator[Connection]:
        """Yield a connection in a transaction bound to this tenant; commit on success (roll back to `rehearse`).

        With `exclusive`, the tenant's lock is taken first and TenantBusy is raised when
        another process holds it (SQLite waits up to `lock_timeout` seconds for it).
        `timeouts` = (lock_timeout, statement_timeout) is applied as by `set_timeouts`.
        With `revisions` (the transaction runs revisions), SQLite follows its procedure for
        table rebuilds: foreign keys off for the transaction, `PRAGMA foreign_key_check`
        before commit (ForeignKeyViolation rolls it back).
        """
        raise NotImplementedError
        yield  # pragma: no cover

    def set_timeouts(self, connection: Connection, lock_timeout: float, statement_timeout: float) -> None:
        """Bound how long this transaction may wait for locks and run one statement."""


class PostgresSchemaStorage(TenantStorage):
    """A tenant in schema `tenant_<slug>` of a PostgreSQL database."""

    kind = "postgresql-schema"
    dialect = "postgresql"

    @property
    def schema(self) -> str:
        return schema_name(self.slug)

    @property
    def version_table_schema(self) -> str | None:
        return self.schema

    def describe(self) -> str:
        return f"schema {self.schema} in {display_url(self.url)}"

    def orm_bind(self) -> Engine:
        # Compiled into every statement, so no connection state can leak between tenants.
        return self.engine.execution_options(schema_translate_map={None: self.schema})

    def _connect(self) -> Connection:
        try:
            return self.engine.connect()
        except OperationalError as e:
            raise unreachable(self.url, e) from e

    def exists(self) -> bool:
        with self._connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": self.schema})
            return found.first() is not None

    def create(self) -> None:
        with self._connect() as conn, conn.begin():
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(self.slug)})
            found = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": self.schema})
            if found.first() is not None:
                raise TenantExists(f"schema {self.schema} already exists in {display_url(self.url)}")
            conn.execute(text("CREATE SCHEMA " + quoted_schema(self.slug)))

    def drop(self) -> None:
        with self._connect() as conn, conn.begin():
            conn.execute(text(self._drop_sql()))

    def _drop_sql(self) -> str:
        return "DROP SCHEMA IF EXISTS " + quoted_schema(self.slug) + " CASCADE"

    @contextmanager
    def dropping(self, lock_timeout: float) -> Iterator[None]:
        # The DROP and the caller's block share the transaction that holds the tenant lock; the
        # commit makes the deletion final. No statement timeout: a large schema takes what it takes.
        with self.begin(exclusive=True, timeouts=(lock_timeout, 0)) as conn:
            try:
                conn.execute(text(self._drop_sql()))
            except DBAPIError as e:
                if getattr(e.orig, "pgcode", None) != "55P03":  # lock_not_available
                    raise
                raise TenantBusy(f"tenant {self.slug!r} is in use: one of its tables stayed locked for "
                                 f"{lock_timeout:g} s; nothing was dropped") from e
            yield

    @contextmanager
    def begin(self, *, exclusive: bool = False, lock_timeout: float = 5.0,
              timeouts: tuple[float, float] | None = None, revisions: bool = False,
              rehearse: bool = False) -> Iterator[Connection]:
        # PostgreSQL's DROP TABLE deletes no rows through foreign-key actions: `revisions` needs nothing here.
        with self._connect() as conn, conn.begin() as trans:
            # One round trip: search_path, the transaction's timeouts and the tenant lock. All are
            # transaction-local (set_config(..., true), xact lock): nothing outlives the transaction
            # on the pooled connection.
            got = driver_execute(conn, _BEGIN_SQL[exclusive, timeouts is not None], {
                "p": quoted_schema(self.slug), "k": lock_key(self.slug),
                **_timeout_values(*(timeouts or (0, 0))),
            })[0]
            if exclusive and not got:
                raise TenantBusy(f"tenant {self.slug!r} is locked by another process")
            yield conn
            if rehearse:
                trans.rollback()

    def set_timeouts(self, connection: Connection, lock_timeout: float, statement_timeout: float) -> None:
        driver_execute(connection, _BEGIN_SQL["timeouts only"], _timeout_values(lock_timeout, statement_timeout))


def _timeout_values(lock_timeout: float, statement_timeout: float) -> dict[str, str]:
    return {"lt": f"{int(lock_timeout * 1000)}ms", "st": f"{int(statement_timeout * 1000)}ms"}


# The lock comes first in the select list, so the first column is its answer. In psycopg2's
# parameter style: these run on the driver's cursor (tenants.core.driver_sql).
_SEARCH_PATH = "set_config('search_path', %(p)s, true)"
_TIMEOUTS = "set_config('lock_timeout', %(lt)s, true), set_config('statement_timeout', %(st)s, true)"
_LOCK = "pg_try_advisory_xact_lock(%(k)s)"
_BEGIN_SQL = {
    (False, False): f"SELECT {_SEARCH_PATH}",
    (False, True): f"SELECT {_SEARCH_PATH}, {_TIMEOUTS}",
    (True, False): f"SELECT {_LOCK}, {_SEARCH_PATH}",
    (True, True): f"SELECT {_LOCK}, {_SEARCH_PATH}, {_TIMEOUTS}",
    "timeouts only": f"SELECT {_TIMEOUTS}",
}


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


def storage_for(
    slug: str, database_url: str | None, control_url: str, tenant_dir: Path, engines: Engines
) -> TenantStorage:
    """Pick the backend from the tenant's own URL, else from the control database's."""
    url = database_url or control_url
    backend = url.split(":", 1)[0].split("+", 1)[0]
    if backend == "postgresql":
        return PostgresSchemaStorage(slug, url, engines.get(url))
    if backend == "sqlite":
        if database_url:
            return SqliteFileStorage(slug, Path(make_url(database_url).database or ""), engines)
        return SqliteFileStorage(slug, Path(tenant_dir) / f"{validate_slug(slug)}.sqlite3", engines)
    raise StorageUnavailable(f"unsupported database {display_url(url)!r}: use postgresql:// or sqlite://")
