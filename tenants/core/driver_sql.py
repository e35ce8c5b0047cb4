"""Statements of the per-tenant hot path, run on the driver's own cursor of a SQLAlchemy connection.

SQLAlchemy's execution (its result objects, events and parameter handling) costs about 50 µs
of CPU per statement; a fleet run's worker issues three per tenant, and that CPU competes with
the database server for the same cores (measured at 1,000 tenants on 2 cores: workers 1.51 s
of CPU through SQLAlchemy, 0.94 s on the cursor). The statements keep their transaction: the
cursor belongs to the connection SQLAlchemy holds, and commit and rollback stay SQLAlchemy's.
"""

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError


def driver_execute(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> tuple | None:
    """Run one statement (or a script, without `params`) and return its first row, None if it has none.

    `sql` is in the driver's own parameter style (psycopg2: `%(name)s`); without `params` the
    driver sends it as it is. A driver error is raised as SQLAlchemy's DBAPIError, as an
    execute through SQLAlchemy would raise it.
    """
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None
    except dbapi.Error as e:
        raise DBAPIError.instance(sql, params, e, dbapi.Error, dialect=conn.dialect) from e
    finally:
        cursor.close()
