"""Render a revision range to SQL once (Alembic's offline mode) and replay it in many tenants.

Per tenant, running Alembic online costs about as much Python as the DDL costs the server.
A range rendered once with unqualified names means the same thing in every tenant's
search_path, so the fast path only executes ready statements inside the tenant's locked
transaction. A range that cannot be rendered offline (a revision reads the database through
`op.get_bind()`, or a SQLite batch needs reflection) is run online instead; so is a tenant
found at another revision than the rendered range starts from.
"""

import time

from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from tenants.core.driver_sql import driver_execute
from tenants.core.errors import TenantBusy
from tenants.core.names import quoted_schema
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.migrate import driver
from tenants.migrate.errors import MigrationFailed, MigrationTimeout
from tenants.migrate.migrator import TIMEOUT_SQLSTATES, MigrationOutcome
from tenants.migrate.plan import Plan

VERSION_TABLE = "(version table)"

# Statements rendered per revision: [(revision, [sql, ...]), ...] in the order they run.
Rendered = list[tuple[str, list[str]]]


class _StatementBuffer:
    """Alembic's offline output_buffer: one write per statement, kept as a list."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def write(self, chunk: str) -> None:
        sql = chunk.strip()
        # Offline mode writes "-- Running ..." markers; BEGIN/COMMIT never appear (we own the transaction).
        if sql and not sql.startswith("--") and sql.rstrip(";").upper() not in ("BEGIN", "COMMIT"):
            self.statements.append(sql)

    def flush(self) -> None:
        pass

    def take(self) -> list[str]:
        taken, self.statements = self.statements, []
        return taken


def _dialect(name: str):  # type: ignore[no-untyped-def]
    # "named" paramstyle: '%' in literal SQL is rendered as is, not escaped as '%%' for psycopg2.
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import psycopg2

        return psycopg2.dialect(paramstyle="named")
    from sqlalchemy.dialects import sqlite  # only when rendering for SQLite: a PostgreSQL run never loads it

    return sqlite.dialect(paramstyle="named")


def render_range(scripts: ScriptDirectory, dialect_name: str, from_rev: str | None, target: str | None,
                 *, downgrade: bool = False) -> Rendered:
    """Return the SQL of every step from `from_rev` to `target`, grouped by revision."""
    steps = driver.steps_between(scripts, from_rev, target, downgrade=downgrade)
    buffer = _StatementBuffer()
    rendered: Rendered = []

    def close_step(ctx, step, heads, run_args) -> None:  # type: ignore[no-untyped-def]
        rendered.append((driver.step_revision(step), buffer.take()))

    driver.render_steps(steps, {"output_buffer": buffer, "literal_binds": True, "starting_rev": from_rev,
                                "transactional_ddl": True, "render_as_batch": dialect_name == "sqlite"},
                        _dialect(dialect_name), on_applied=close_step)
    if from_rev is None and not downgrade and rendered and rendered[0][1]:
        # Offline mode creates the version table when starting from base; a tenant taken back
        # to base still has it (empty), so replay runs this statement only where it is missing.
        first, statements = rendered[0]
        if statements[0].startswith("CREATE TABLE alembic_version"):
            rendered[0:1] = [(VERSION_TABLE, statements[:1]), (first, statements[1:])]
    return rendered


def sql_script(storage: TenantStorage, rendered: Rendered) -> str:
    """Return one tenant's SQL as a script a DBA can read or feed to psql."""
    lines = ["BEGIN;"]
    if storage.dialect == "postgresql":
        lines.append("SET LOCAL search_path TO " + quoted_schema(storage.slug) + ";")
    for revision, statements in rendered:
        lines.append(f"-- revision {revision}")
        lines.extend(statements)
    lines.append("COMMIT;")
    return "\n".join(lines)


class _Moved(Exception):
    """The tenant is not where the plan saw it: leave the transaction and run Alembic online."""


def _has_version_table(conn: Connection) -> bool:
    # to_regclass resolves through the tenant's search_path; cheaper than a reflection query.
    return driver_execute(conn, "SELECT to_regclass('alembic_version') IS NOT NULL")[0]


def _version(conn: Connection, expected: str | None) -> tuple[str | None, bool]:
    """Return (current revision, whether alembic_version exists) in one round trip when possible."""
    if expected is None:
        if not _has_version_table(conn):
            return None, False
    else:
        # The plan saw a version row, so the table is almost surely there: read it directly and
        # treat its absence (dropped since the plan) as a moved tenant.
        try:
            return driver_execute(conn, "SELECT max(version_num) FROM alembic_version")[0], True
        except DBAPIError as e:
            if getattr(e.orig, "pgcode", None) == "42P01":  # undefined_table
                raise _Moved() from e
            raise
    return driver_execute(conn, "SELECT max(version_num) FROM alembic_version")[0], True


def batches(rendered: Rendered) -> list[tuple[str, str]]:
    """Join each revision's statements into one script, so a failure can name its revision.

    The statements carry no parameters (literal binds), so psycopg2 sends each script as one
    simple query.
    """
    return [(revision, "\n".join(sql if sql.endswith(";") else sql + ";" for sql in statements))
            for revision, statements in rendered if statements]


def one_script(rendered: Rendered) -> str:
    """Join every revision's statements into one script: one round trip for the whole range."""
    return "\n".join(script for _, script in batches(rendered))


def replay(storage: TenantStorage, rendered: Rendered, from_rev: str | None, target: str | None, *,
           lock_timeout: float, statement_timeout: float, rehearse: bool = False) -> MigrationOutcome | None:
    """Run rendered statements in the tenant's locked transaction; None if it is not at `from_rev`.

    The whole range goes to the server as one query: each extra query of a DDL transaction cost
    the server about 0.25 ms per tenant (measured: 10 revisions as 10 queries 15.9 ms per tenant,
    as one 13.5 ms). A failure of several revisions does not say which one failed, so the range
    runs again revision by revision, in a new transaction, and that error names the revision; a
    timeout is not run again (it would wait as long once more) and names the range instead.
    With `rehearse` the transaction is rolled back after the last statement.
    """
    started = time.perf_counter()
    revisions = [revision for revision, statements in rendered if statements and revision != VERSION_TABLE]
    try:
        ran = _run_range(storage, rendered, from_rev, lock_timeout, statement_timeout, rehearse, whole=True)
    except MigrationTimeout:
        raise
    except MigrationFailed as failed:
        if len(revisions) < 2:
            raise
        try:
            ran = _run_range(storage, rendered, from_rev, lock_timeout, statement_timeout, rehearse, whole=False)
        except TenantBusy:  # another process took the lock between the two: the failure stands, its revision unnamed
            raise failed from failed.__cause__  # its own cause (the database error), not the busy lock
    if not ran:
        return None  # moved since the plan: the caller runs Alembic online
    applied = [revision for revision, _ in rendered if revision != VERSION_TABLE]
    return MigrationOutcome(storage.slug, from_rev, target, applied, (time.perf_counter() - started) * 1000)


def _run_range(storage: TenantStorage, rendered: Rendered, from_rev: str | None, lock_timeout: float,
               statement_timeout: float, rehearse: bool, *, whole: bool) -> bool:
    """Run the range in one transaction, as one query (`whole`) or one per revision; False if the tenant moved."""
    failing: str | None = None
    try:
        with storage.begin(exclusive=True, revisions=True, rehearse=rehearse, lock_timeout=lock_timeout,
                           timeouts=(lock_timeout, statement_timeout)) as conn:
            current, has_table = _version(conn, from_rev)
            if current != from_rev:
                return False
            todo = [(revision, sql) for revision, sql in rendered if not (revision == VERSION_TABLE and has_table)]
            named = [revision for revision, sql in todo if sql and revision != VERSION_TABLE]
            parts = [(f"{named[0]}..{named[-1]}", one_script(todo))] if whole and len(named) > 1 else batches(todo)
            for revision, script in parts:
                failing = revision
                driver_execute(conn, script)  # no parameters: the script goes as it is
    except _Moved:
        return False
    except DBAPIError as e:
        code = getattr(e.orig, "pgcode", None)
        error_class = MigrationTimeout if code in TIMEOUT_SQLSTATES else MigrationFailed
        message = str(getattr(e, "orig", None) or e).strip().splitlines()
        revision = None if failing == VERSION_TABLE else failing
        raise error_class(storage.slug, revision, message[0] if message else type(e).__name__) from e
    return True


def render_pending(tenancy: Tenancy, plan: Plan) -> dict[str | None, Rendered]:
    """Render each distinct pending range once, for PostgreSQL tenants without flagged revisions."""
    rendered: dict[str | None, Rendered] = {}
    below_target = driver.ancestors(tenancy.scripts, plan.target)
    for current, start in plan.starts.items():
        urls = {url or tenancy.settings.control_url for url in start.urls}
        if start.outside_transaction or not any(url.startswith("postgresql") for url in urls):
            continue
        # Replay reads one version row and ends at the plan's target: a branched tenant, or one
        # moving to another branch (0004a -> 0004b ends at both), is run by Alembic online.
        if len(driver.split_heads(current)) > 1 or (current and current not in below_target):
            continue
        try:
            rendered[current] = render_range(tenancy.scripts, "postgresql", current, plan.target)
        except Exception:  # needs a live connection (op.get_bind(), reflection): Alembic runs it online
            continue
    return rendered


def plan_sql(tenancy: Tenancy, plan: Plan) -> list[tuple[str, str | None, str | None]]:
    """Return (slug, SQL script, error) per pending tenant, rendered offline; nothing is touched."""
    cache: dict[tuple[str, str | None], Rendered | Exception] = {}
    scripts = []
    for item in plan.pending:
        storage = tenancy.storage(item.tenant)
        key = (storage.dialect, item.current)
        if key not in cache:
            try:
                cache[key] = render_range(tenancy.scripts, storage.dialect, item.current, plan.target,
                                          downgrade=plan.kind == "downgrade")
            except Exception as e:  # e.g. SQLite batch mode needs a live connection
                cache[key] = e
        rendered = cache[key]
        if isinstance(rendered, Exception):
            scripts.append((item.slug, None, f"cannot render offline: {str(rendered).splitlines()[0]}"))
        else:
            scripts.append((item.slug, sql_script(storage, rendered), None))
    return scripts
