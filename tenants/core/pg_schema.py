"""A tenant in schema `tenant_<slug>` of a PostgreSQL database.

The tenant's own database when its record has a URL, else the control database.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from tenants.core.driver_sql import driver_execute
from tenants.core.engines import display_url, unreachable
from tenants.core.errors import TenantBusy, TenantExists
from tenants.core.names import lock_key, quoted_schema, schema_name
from tenants.core.storage import TenantStorage


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
            conn.execute(text(_drop_schema(self.slug)))

    @contextmanager
    def dropping(self, lock_timeout: float) -> Iterator[None]:
        # The DROP, then the caller's block, in the transaction that holds the tenant lock; its commit
        # makes the deletion final. No statement timeout: a large schema takes what it takes.
        with self.begin(exclusive=True, timeouts=(lock_timeout, 0)) as conn:
            try:
                conn.execute(text(_drop_schema(self.slug)))
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


def _drop_schema(slug: str) -> str:
    return "DROP SCHEMA IF EXISTS " + quoted_schema(slug) + " CASCADE"


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
