"""One SQLAlchemy engine per database, configured so tenant work is transactional."""

import re
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import NullPool

from tenants.core.errors import InvalidUsage, StorageUnavailable


def display_url(url: str) -> str:
    """Return the URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown only by its scheme
        return url.split(":", 1)[0] + "://..."


def unreachable(url: str, error: Exception) -> StorageUnavailable:
    """Build the one-line error for a database that cannot be reached."""
    reason = str(getattr(error, "orig", error)).strip().splitlines()
    return StorageUnavailable(f"cannot reach database {display_url(url)}: {reason[0] if reason else error}")


def unreadable(url: str, error: Exception) -> StorageUnavailable:
    """Build the one-line error for a database file that opens but cannot be read (a corrupt SQLite file)."""
    reason = str(getattr(error, "orig", error)).strip().splitlines()
    return StorageUnavailable(f"control database {display_url(url)} cannot be read: "
                              f"{reason[0] if reason else error}; restore it from a backup")


# user:password@ in any URL-like text (postgresql://, redis://, amqp://, ...).
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")


def mask_secrets(text: str) -> str:
    """Return `text` with the password of every URL in it replaced by ***."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def check_database_url(url: str) -> None:
    """Refuse a tenant database URL that no engine could use (InvalidUsage), before anything is recorded."""
    try:
        parsed = make_url(url)
    except Exception as e:
        raise InvalidUsage(f"invalid database URL {display_url(url)!r}: write postgresql://USER@HOST/DATABASE") from e
    if parsed.drivername == "postgres":
        raise InvalidUsage(f"invalid database URL {display_url(url)!r}: use postgresql://, not postgres://")
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise InvalidUsage(f"unsupported database {display_url(url)!r}: use postgresql:// or sqlite://")


def driver_url(url: str) -> str:
    """Return `url` with an explicit driver: psycopg2 for PostgreSQL (SQLAlchemy 2.1 defaults to psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(engine: Engine, *, explicit_begin: bool) -> None:
    """Enforce foreign keys and wait up to 5 s for a locked file; with `explicit_begin`, SQLAlchemy emits BEGIN.

    pysqlite commits implicitly before DDL; without explicit BEGIN a failed revision would leave
    a SQLite tenant half-migrated. `sqlite_begin` picks BEGIN IMMEDIATE for writers that
    want the file's write lock up front (the migrator uses it as the tenant lock).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        if explicit_begin:
            dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.execute("PRAGMA busy_timeout = 5000")

    if not explicit_begin:
        return

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))


def ping_when_idle(engine: Engine, idle: float = 1.0) -> Engine:
    """Like pool_pre_ping, but skip the ping for a connection checked in less than `idle` seconds ago.

    A fleet run checks a connection out per tenant, back to back: a ping each time would be
    one round trip per tenant spent proving what the previous tenant just proved.
    """

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: object, record) -> None:  # type: ignore[no-untyped-def]
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: object, record, _proxy: object) -> None:  # type: ignore[no-untyped-def]
        last = record.info.get("checked_in_at")
        if last is None or time.monotonic() - last < idle:
            return  # just opened, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as e:
            raise DisconnectionError(str(e)) from e  # the pool replaces the connection and retries
        if not alive:
            raise DisconnectionError("ping failed")

    return engine


def engine_options(url: str, *, durable_commits: bool = True) -> dict:
    """Return the create_engine() keyword arguments for `url` (the web app's Flask-SQLAlchemy takes them too).

    With `durable_commits=False` (PostgreSQL), sessions use synchronous_commit=off: a commit returns
    before its WAL flush. The fleet writes its per-tenant results this way (one fsync per tenant
    instead of two); a database crash may lose the last fraction of a second of results, which the
    tenants' own alembic_version, the truth, lets the next run correct.
    """
    backend = make_url(url).get_backend_name()
    # No error message or log line ever shows a statement's parameters (a tenant's URL, a password hash).
    if backend != "postgresql":
        return {"hide_parameters": True}
    connect_args: dict = {"connect_timeout": 5, "application_name": "tenant-portal"}
    # psycopg2-binary's bundled libpq probes for Kerberos credentials on every connect unless told
    # not to, and that probe is not thread-safe (psycopg/psycopg#1213): threads of the web server
    # connecting at once can crash the process. GSS encryption stays available by asking for it
    # in the URL (?gssencmode=prefer), which then wins.
    if "gssencmode" not in make_url(url).query:
        connect_args["gssencmode"] = "disable"
    if not durable_commits:
        connect_args.update(options="-c synchronous_commit=off", application_name="tenant-ledger")
    return {"pool_size": 5, "max_overflow": 10, "connect_args": connect_args, "hide_parameters": True}


# PostgreSQL 14+ checks every this many ms whether the client of a running query is still there, so
# the session of a killed worker ends (rolling its transaction back, freeing its locks) within a
# second instead of when its statement finishes.
CLIENT_CHECK_MS = 1000


def notice_dead_clients(engine: Engine) -> Engine:
    """Set client_connection_check_interval on each new PostgreSQL 14+ connection."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        if getattr(dbapi_connection, "server_version", 0) >= 140000:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET client_connection_check_interval = %s", (CLIENT_CHECK_MS,))
            dbapi_connection.commit()

    return engine


def configure_engine(engine: Engine, *, explicit_begin: bool = True) -> Engine:
    """Apply the one connection policy to an engine: SQLite pragmas, PostgreSQL pings only when idle.

    `explicit_begin=False` is for the web app's ORM session on a SQLite control plane: there a
    request's reads must not hold the file's shared lock (pysqlite begins only before writes)
    while the library records its writes on a connection of its own.
    """
    if engine.dialect.name == "sqlite":
        _sqlite_pragmas(engine, explicit_begin=explicit_begin)
    elif engine.dialect.name == "postgresql":
        ping_when_idle(engine)
        notice_dead_clients(engine)
    return engine


def make_engine(url: str, *, durable_commits: bool = True, pooled: bool = True) -> Engine:
    """The one engine factory: tenant databases, the control plane and the run ledger all come from here.

    `pooled=False` opens a connection per use and keeps none (a background thread's engine).
    """
    try:
        parsed = make_url(driver_url(url))
    except Exception as e:
        raise StorageUnavailable(f"invalid database URL {display_url(url)!r}") from e
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StorageUnavailable(f"unsupported database {display_url(url)!r}: use postgresql:// or sqlite://")
    if backend == "sqlite" and parsed.database:
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file where the folder should be, no permission, a read-only disk
            raise StorageUnavailable(f"cannot use the folder {str(folder)!r} for {display_url(url)!r}: "
                                     f"{e.strerror or e}") from e
    options = engine_options(url, durable_commits=durable_commits)
    if not pooled:
        options = {key: value for key, value in options.items() if key not in ("pool_size", "max_overflow")}
        options["poolclass"] = NullPool
    return configure_engine(create_engine(parsed, **options))


class Engines:
    """A cache of engines keyed by URL, so every tenant of one server shares a pool."""

    def __init__(self) -> None:
        self._engines: dict[tuple[str, bool], Engine] = {}
        self._lock = threading.Lock()

    def get(self, url: str, *, durable_commits: bool = True) -> Engine:
        """Return the engine for `url`, creating it on first use (see engine_options for durable_commits)."""
        key = (url, durable_commits or not url.startswith("postgresql"))
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = self._engines[key] = make_engine(url, durable_commits=key[1])
            return engine

    def dispose(self) -> None:
        """Close every pooled connection (after fork, at exit, in tests)."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
