"""One SQLAlchemy engine per database, configured so tenant work is transactional."""

import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from tenants.errors import StorageUnavailable


def display_url(url: str) -> str:
    """Return the URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown only by its scheme
        return url.split(":", 1)[0] + "://..."


def driver_url(url: str) -> str:
    """Return `url` with an explicit driver: psycopg2 for PostgreSQL (SQLAlchemy 2.1 defaults to psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def _make_sqlite_transactional(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, emit BEGIN, so DDL is inside the transaction too.

    pysqlite commits implicitly before DDL; without this a failed revision would leave
    a SQLite tenant half-migrated. `sqlite_begin` picks BEGIN IMMEDIATE for writers that
    want the file's write lock up front (the migrator uses it as the tenant lock).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.execute("PRAGMA busy_timeout = 5000")

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


class Engines:
    """A cache of engines keyed by URL, so every tenant of one server shares a pool."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Engine:
        """Return the engine for `url`, creating it on first use."""
        with self._lock:
            engine = self._engines.get(url)
            if engine is None:
                engine = self._engines[url] = self._create(url)
            return engine

    @staticmethod
    def _create(url: str) -> Engine:
        try:
            parsed = make_url(driver_url(url))
        except Exception as e:
            raise StorageUnavailable(f"invalid database URL {display_url(url)!r}") from e
        if parsed.get_backend_name() == "sqlite":
            if parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed)
            _make_sqlite_transactional(engine)
            return engine
        if parsed.get_backend_name() == "postgresql":
            return ping_when_idle(create_engine(
                parsed, pool_size=5, max_overflow=10,
                connect_args={"connect_timeout": 5, "application_name": "tenant-portal"},
            ))
        raise StorageUnavailable(f"unsupported database {display_url(url)!r}: use postgresql:// or sqlite://")

    def dispose(self) -> None:
        """Close every pooled connection (after fork, at exit, in tests)."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
