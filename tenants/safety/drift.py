"""Drift: does each tenant's live schema match its recorded revision, and its ledger entry?

The expected schema is not read from today's models: it is built by applying the chain up
to the tenant's own revision in a scratch place (a schema in a transaction that is rolled
back on PostgreSQL, an in-memory database on SQLite) and reflected. Alembic's autogenerate
comparison then lists every table, column, type, index and constraint that differs.
"""

import os
from dataclasses import asdict, dataclass, field

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Connection, MetaData, create_engine, inspect, text

from tenants.core.errors import TenantError
from tenants.core.ledger import ledger_versions
from tenants.core.names import quote_ident
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.migrate import driver
from tenants.migrate.control import ensure_control
from tenants.migrate.errors import InvalidRevision
from tenants.migrate.migrator import alembic_options, resolve_target

#: Autogenerate operation -> the drift kind reported (the database is "live", the scratch "expected").
KINDS = {
    "add_table": "missing-table", "remove_table": "extra-table", "add_column": "missing-column",
    "remove_column": "extra-column", "add_index": "missing-index", "remove_index": "extra-index",
    "add_constraint": "missing-constraint", "remove_constraint": "extra-constraint",
    "add_fk": "missing-foreign-key", "remove_fk": "extra-foreign-key", "modify_type": "type",
    "modify_nullable": "nullable", "modify_default": "server-default",
}


@dataclass(frozen=True)
class Difference:
    """One way a tenant differs from what its revision says it should be."""

    kind: str
    table: str | None
    name: str | None
    detail: str


@dataclass
class TenantDrift:
    """A tenant's drift report."""

    slug: str
    revision: str | None
    ledger_revision: str | None
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None

    @property
    def drifted(self) -> bool:
        return bool(self.differences or self.error)

    def to_dict(self) -> dict:
        """Return the report as JSON-ready data."""
        return {**asdict(self), "drifted": self.drifted}


def _include_name(name, type_, parent_names) -> bool:  # type: ignore[no-untyped-def]
    return not (type_ == "table" and name == "alembic_version")


def _apply_chain(conn: Connection, scripts: ScriptDirectory, revision: str, opts: dict) -> None:
    driver.run_steps(conn, driver.steps_between(scripts, None, revision), opts)


def reflect_tenant(conn: Connection) -> MetaData:
    """Return the tables the connection's tenant holds, reflected, without Alembic's version table."""
    metadata = MetaData()
    metadata.reflect(conn)
    if "alembic_version" in metadata.tables:
        metadata.remove(metadata.tables["alembic_version"])
    return metadata


def expected_schema(scripts: ScriptDirectory, revision: str | None, storage: TenantStorage,
                    conn: Connection) -> MetaData:
    """Return the schema the chain builds up to `revision`, reflected, in the tenant's dialect."""
    if revision is None:
        return MetaData()
    if storage.dialect == "sqlite":
        engine = create_engine("sqlite://")
        try:
            with engine.begin() as scratch:
                _apply_chain(scratch, scripts, revision, {"render_as_batch": True})
                return reflect_tenant(scratch)
        finally:
            engine.dispose()
    # PostgreSQL: a scratch schema inside a savepoint that is always rolled back; nothing persists.
    scratch_schema = f"tenant_portal_drift_{os.getpid()}"
    savepoint = conn.begin_nested()
    try:
        conn.execute(text("CREATE SCHEMA " + quote_ident(scratch_schema)))
        conn.execute(text("SELECT set_config('search_path', :p, true)"), {"p": quote_ident(scratch_schema)})
        _apply_chain(conn, scripts, revision, {"version_table_schema": scratch_schema, "transactional_ddl": True})
        return reflect_tenant(conn)
    finally:
        savepoint.rollback()  # also restores the tenant's search_path


def _differences(diffs: list) -> list[Difference]:
    found = []
    for diff in diffs:
        if isinstance(diff, list):  # column modifications come grouped
            for op, _schema, table, column, _info, live, expected in diff:
                if op in KINDS:
                    found.append(Difference(KINDS[op], table, column, f"live {live}, expected {expected}"))
            continue
        op, obj = diff[0], diff[-1]
        if op not in KINDS:
            continue
        if op in ("add_column", "remove_column"):
            found.append(Difference(KINDS[op], diff[2], obj.name, f"{obj.name} {obj.type}"))
        elif op in ("add_table", "remove_table"):
            found.append(Difference(KINDS[op], obj.name, None, ", ".join(c.name for c in obj.columns)))
        else:
            table = getattr(getattr(obj, "table", None), "name", None)
            columns = ", ".join(c.name for c in getattr(obj, "columns", ()))
            found.append(Difference(KINDS[op], table, obj.name, f"({columns})"))
    return found


def _normal(sql: str) -> str:
    return " ".join(str(sql).split()).lower()


def _check_constraints(tables: dict[str, list[tuple[str | None, str]]]) -> dict[tuple[str, str], str]:
    """Key each CHECK constraint by (table, name, or its text when unnamed) -> its normalised text."""
    return {(table, name or _normal(sql)): _normal(sql) for table, checks in tables.items() for name, sql in checks}


def compare_checks(storage: TenantStorage, conn: Connection, expected: MetaData) -> list[Difference]:
    """Compare CHECK constraints, which Alembic's autogenerate never compares."""
    inspector = inspect(conn)
    schema = storage.version_table_schema
    tables = [table for table in inspector.get_table_names(schema) if table != "alembic_version"]
    live = _check_constraints({table: [(c["name"], c["sqltext"]) for c in
                                       inspector.get_check_constraints(table, schema)] for table in tables})
    wanted = _check_constraints({table.name: [(c.name, str(c.sqltext)) for c in table.constraints
                                              if isinstance(c, CheckConstraint)]
                                 for table in expected.tables.values()})
    found = []
    for (table, name), sql in sorted(wanted.items()):
        if (table, name) not in live:
            found.append(Difference("missing-constraint", table, name, f"CHECK ({sql})"))
        elif live[(table, name)] != sql:
            found.append(Difference("check-constraint", table, name, f"live CHECK ({live[(table, name)]}), "
                                                                      f"expected CHECK ({sql})"))
    found += [Difference("extra-constraint", table, name, f"CHECK ({sql})")
              for (table, name), sql in sorted(live.items()) if (table, name) not in wanted]
    return found


def compare_tenant(storage: TenantStorage, conn: Connection, expected: MetaData) -> list[Difference]:
    """Compare the tenant's live schema (on `conn`, bound to it) with the expected schema.

    Tables, columns, types, nullability, server defaults, indexes, unique and foreign-key
    constraints through Alembic's autogenerate comparison; CHECK constraints on their own.
    """
    ctx = MigrationContext.configure(conn, opts={
        **alembic_options(storage), "include_name": _include_name, "compare_type": True,
        "compare_server_default": True})
    return _differences(compare_metadata(ctx, expected)) + compare_checks(storage, conn, expected)


def _check_one(tenancy: Tenancy, slug: str, ledger: str | None, cache: dict) -> TenantDrift:
    storage = tenancy.storage(slug)
    report = TenantDrift(slug, None, ledger)
    if not storage.exists():
        report.error = f"{storage.describe()} is missing"
        return report
    with storage.begin() as conn:
        storage.set_timeouts(conn, tenancy.settings.lock_timeout, tenancy.settings.statement_timeout)
        live = driver.current_revision(conn, alembic_options(storage))
        report.revision = live
        if live != ledger:
            report.differences.append(Difference("ledger", None, None,
                                                 f"alembic_version is {live or 'base'}, "
                                                 f"the ledger says {ledger or 'nothing'}"))
        try:
            for head in driver.split_heads(live):  # a branched tenant is at each of its heads
                resolve_target(tenancy.scripts, head)
        except InvalidRevision:
            report.differences.append(Difference("unknown-revision", None, live,
                                                 f"revision {live} is not in the chain"))
            return report
        key = (storage.dialect, live)
        if key not in cache:
            cache[key] = expected_schema(tenancy.scripts, live, storage, conn)
        report.differences.extend(compare_tenant(storage, conn, cache[key]))
    return report


def check_drift(tenancy: Tenancy, slugs: list[str] | None = None) -> list[TenantDrift]:
    """Return a drift report for every tenant (or the named ones), in slug order."""
    ensure_control(tenancy)
    ledger = ledger_versions(tenancy.control_engine)
    wanted = [tenancy.registry.get(s).slug for s in slugs] if slugs else [t.slug for t in tenancy.registry.all()]
    cache: dict = {}
    reports = []
    for slug in wanted:
        try:
            reports.append(_check_one(tenancy, slug, ledger.get(slug), cache))
        except TenantError as e:
            reports.append(TenantDrift(slug, None, ledger.get(slug), error=str(e)))
        except Exception as e:  # one tenant's broken schema must not hide the others' reports
            reports.append(TenantDrift(slug, None, ledger.get(slug), error=f"{type(e).__name__}: {e}".splitlines()[0]))
    return reports
