"""A tenant connection outside any transaction, for the few statements that refuse one.

CREATE INDEX CONCURRENTLY and VACUUM cannot run in a transaction block. They get a connection
of their own in autocommit mode, with the tenant's search_path, timeouts and advisory lock
set for the session, and the connection is discarded afterwards so none of that reaches the pool.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from tenants.core.engines import unreachable
from tenants.core.errors import TenantBusy
from tenants.core.names import lock_key, quoted_schema
from tenants.core.pg_schema import PostgresSchemaStorage


@contextmanager
def autocommit_session(storage: PostgresSchemaStorage, lock_timeout: float,
                       statement_timeout: float) -> Iterator[Connection]:
    """Yield an autocommit connection bound to the tenant and holding its lock; discard it after."""
    try:
        conn = storage.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except OperationalError as e:
        raise unreachable(storage.url, e) from e
    try:
        conn.execute(text("SELECT set_config('search_path', :p, false)"), {"p": quoted_schema(storage.slug)})
        if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(storage.slug)}).scalar():
            raise TenantBusy(f"tenant {storage.slug!r} is locked by another process")
        for name, seconds in (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout)):
            conn.execute(text("SELECT set_config(:n, :v, false)"), {"n": name, "v": f"{int(seconds * 1000)}ms"})
        yield conn
    finally:
        conn.invalidate()  # the session ends here: its lock, search_path and timeouts go with it
        conn.close()
