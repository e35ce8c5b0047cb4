"""Maintenance tasks for `for-each-tenant`: built-ins, and a registry a project adds its own to.

A task is a function `(connection, storage, params) -> detail or None` run on one tenant. The
fleet runner gives it the same tenant lock, timeouts, ledger records and exit codes as an
upgrade. A project registers one in a few lines, in a module named in PORTAL_TASK_MODULES:

    from sqlalchemy import text
    from tenants.fleet.tasks import register_task

    @register_task("purge-sessions", help="Delete expired sessions.")
    def purge_sessions(conn, storage, params):
        conn.execute(text("DELETE FROM sessions WHERE expires_at < CURRENT_TIMESTAMP"))
"""

import importlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select, text
from sqlalchemy import table as table_clause

from tenants.core.autocommit import autocommit_session
from tenants.core.clock import utcnow
from tenants.core.control_schema import tenant_stats, tenants
from tenants.core.errors import InvalidUsage, StorageUnavailable
from tenants.core.ledger import TenantResult
from tenants.core.names import quote_ident
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.migrate.driver import current_revision
from tenants.migrate.migrator import alembic_options
from tenants.migrate.unit import timeouts

TaskFunction = Callable[[Connection, TenantStorage, dict], str | None]
UNIT_PREFIX = "task:"


@dataclass(frozen=True)
class Task:
    """A registered maintenance task."""

    name: str
    function: TaskFunction
    help: str
    transactional: bool = True


TASKS: dict[str, Task] = {}


def register_task(name: str, *, help: str = "", transactional: bool = True) -> Callable[[TaskFunction], TaskFunction]:
    """Register `function` as task `name`; transactional=False runs it on an autocommit connection."""

    def add(function: TaskFunction) -> TaskFunction:
        task = Task(name, function, help or (function.__doc__ or "").strip().splitlines()[0], transactional)
        TASKS[name] = task
        return function

    return add


def load_task_modules() -> None:
    """Import the project's task modules named in PORTAL_TASK_MODULES (comma-separated)."""
    for module in filter(None, (m.strip() for m in os.environ.get("PORTAL_TASK_MODULES", "").split(","))):
        importlib.import_module(module)


def get_task(name: str) -> Task:
    """Return a registered task or raise InvalidUsage naming the known ones."""
    if name not in TASKS:
        load_task_modules()
    if name not in TASKS:
        raise InvalidUsage(f"unknown task {name!r}: use one of {', '.join(sorted(TASKS))}")
    return TASKS[name]


def _revision(conn: Connection, storage: TenantStorage) -> str | None:
    return current_revision(conn, alembic_options(storage))


def run_task(task: Task, tenancy: Tenancy, storage: TenantStorage, params: dict) -> TenantResult:
    """Run a maintenance task on one tenant under its lock and timeouts; return its result."""
    started = time.perf_counter()
    lock_timeout, statement_timeout = timeouts(tenancy, params)
    # A task that records what it found for the console (stats) writes it to the control plane.
    params = {**params, "control_engine": tenancy.control_engine}
    if task.transactional:
        with storage.begin(exclusive=True, lock_timeout=lock_timeout,
                           timeouts=(lock_timeout, statement_timeout)) as conn:
            revision = _revision(conn, storage)
            detail = task.function(conn, storage, params)
    elif storage.dialect == "postgresql":
        with autocommit_session(storage, lock_timeout, statement_timeout) as conn:  # type: ignore[arg-type]
            revision = _revision(conn, storage)
            detail = task.function(conn, storage, params)
    else:
        # SQLite: a connection on which no transaction has begun; the file's own lock applies.
        if not storage.exists():
            raise StorageUnavailable(f"tenant {storage.slug!r}: its storage is missing ({storage.describe()})")
        with storage.engine.connect() as conn:
            detail = task.function(conn, storage, params)
            if conn.in_transaction():
                conn.commit()
        with storage.begin() as conn:
            revision = _revision(conn, storage)
    return TenantResult(storage.slug, "ok", revision, revision, (time.perf_counter() - started) * 1000,
                        None, detail)


def _table_names(conn: Connection, storage: TenantStorage) -> list[str]:
    if storage.dialect == "postgresql":
        rows = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                                 "ORDER BY tablename"))
    else:
        rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table' "
                                 "AND name NOT LIKE 'sqlite_%' ORDER BY name"))
    return [name for (name,) in rows]


def _tenant_tables(conn: Connection, storage: TenantStorage) -> list[str]:
    return [quote_ident(name) for name in _table_names(conn, storage)]


@register_task("analyze")
def analyze(conn: Connection, storage: TenantStorage, params: dict) -> str:
    """Refresh the planner statistics of the tenant's tables."""
    tables = _tenant_tables(conn, storage)
    for table in tables:
        conn.execute(text("ANALYZE " + table))
    return f"analyzed {len(tables)} tables"


@register_task("vacuum", transactional=False)
def vacuum(conn: Connection, storage: TenantStorage, params: dict) -> str:
    """VACUUM (ANALYZE) the tenant's tables on PostgreSQL; SQLite: VACUUM the tenant's file."""
    if storage.dialect != "postgresql":
        # Straight to the driver: SQLAlchemy would open a transaction, and VACUUM refuses one.
        raw: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        raw.execute("VACUUM")
        return "vacuumed the tenant file"
    tables = _tenant_tables(conn, storage)
    for table in tables:
        conn.execute(text("VACUUM (ANALYZE) " + table))
    return f"vacuumed {len(tables)} tables"


@register_task("sql")
def run_sql_file(conn: Connection, storage: TenantStorage, params: dict) -> str:
    """Run a reviewed SQL file (params['sql']) inside the tenant's transaction."""
    sql = params["sql"]
    if storage.dialect == "postgresql":
        # One call runs every statement of the file, in the tenant's search_path.
        conn.exec_driver_sql(sql, execution_options={"no_parameters": True})
        return f"ran {params.get('path', 'SQL')} ({params.get('sha256', '')[:12]})"
    count, statement = 0, ""
    for line in sql.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
            count, statement = count + 1, ""
    if statement.strip():
        conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
    return f"ran {params.get('path', 'SQL')} ({params.get('sha256', '')[:12]})"


@register_task("stats")
def refresh_stats(conn: Connection, storage: TenantStorage, params: dict) -> str:
    """Count the rows of the tenant's tables into the control plane's tenant_stats (the console's dashboard)."""
    names = [name for name in _table_names(conn, storage) if name != "alembic_version"]
    # table_clause() quotes the name; on PostgreSQL the tenant's search_path resolves it to its schema.
    counts = {name: conn.execute(select(func.count()).select_from(table_clause(name))).scalar_one() for name in names}
    taken_at = utcnow()
    with params["control_engine"].connect() as control:
        # SQLite: take the control file's write lock up front; a read lock upgraded later fails at once
        # ("database is locked") while other tenants' workers write their stats.
        control.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with control.begin():
            # Rows of an earlier tenant under this slug (dropped, re-created) and of dropped tables go too.
            control.execute(delete(tenant_stats).where(tenant_stats.c.tenant_slug == storage.slug))
            key = control.execute(select(tenants.c.account_key).where(tenants.c.slug == storage.slug)).scalar()
            if key is None:
                return "not recorded: the tenant left the registry meanwhile"
            if counts:
                control.execute(insert(tenant_stats), [
                    {"tenant_key": key, "table_name": name, "tenant_slug": storage.slug, "row_count": count,
                     "taken_at": taken_at} for name, count in counts.items()])
    return "counted " + ", ".join(f"{name} {count}" for name, count in counts.items())
