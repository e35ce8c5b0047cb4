"""verify-chain: walk the chain on a scratch tenant full of rows and prove no revision loses one.

On each dialect asked for, a scratch tenant (a SQLite file in a temporary folder, or a scratch
schema) is walked base -> head -> base -> head one revision at a time, through the same
migrator every command uses. Before each step every table gets rows (association tables
included); after it, no table the step does not drop may have fewer rows, and after each
downgrade the schema must equal the schema before the matching upgrade. The first revision
that breaks either is reported. The scratch tenant is removed afterwards, whatever happens.
"""

import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Enum,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.sql.sqltypes import Float, String

from tenants.core.errors import InvalidUsage
from tenants.core.pg_schema import PostgresSchemaStorage
from tenants.core.sqlite_file import SqliteFileStorage
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control
from tenants.migrate.migrator import migrate_tenant
from tenants.safety.drift import compare_tenant, reflect_tenant

ROWS_PER_TABLE = 2


@dataclass
class ChainBreak:
    """Where the chain lost rows, failed, or did not come back to the schema it left."""

    revision: str
    direction: str  # upgrade | downgrade
    kind: str  # lost-rows | schema | fails | fill
    detail: str


@dataclass
class ChainVerdict:
    """One dialect's walk: how many steps it took, and the first break (None: the chain holds)."""

    dialect: str
    steps: int = 0
    broken: ChainBreak | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return the verdict as JSON-ready data."""
        return {"dialect": self.dialect, "steps": self.steps, "ok": self.broken is None,
                "break": None if self.broken is None else self.broken.__dict__, "notes": self.notes}


def _counts(storage: TenantStorage) -> dict[str, int]:
    with storage.begin() as conn:
        return {name: conn.execute(select(func.count()).select_from(table)).scalar()
                for name, table in reflect_tenant(conn).tables.items()}


def _value(column, n: int, conn: Connection, table: Table):  # type: ignore[no-untyped-def]
    """Return a value for `column` in row number `n`, or a parent key for a foreign key."""
    for key in column.foreign_keys:
        parent = key.column
        keys = conn.execute(select(parent).order_by(parent)).scalars().all()
        return keys[n % len(keys)] if keys else None
    kind = column.type
    if isinstance(kind, Boolean):
        return n % 2 == 0
    if isinstance(kind, Enum):
        return kind.enums[0] if kind.enums else None
    if isinstance(kind, Integer):
        return n
    if isinstance(kind, Numeric | Float):
        return Decimal(n) if isinstance(kind, Numeric) and kind.asdecimal else float(n)
    if isinstance(kind, DateTime):
        return datetime(2026, 1, 1) + timedelta(seconds=n)
    if isinstance(kind, Date):
        return date(2026, 1, 1) + timedelta(days=n)
    if isinstance(kind, LargeBinary):
        return str(n).encode()
    if isinstance(kind, JSON):
        return {"n": n}
    if isinstance(kind, String):
        return f"v{n}@example.com"[: kind.length] if kind.length else f"v{n}@example.com"
    return str(n)


def fill(storage: TenantStorage, start: int) -> int:
    """Give every table at least ROWS_PER_TABLE rows, parents first; return the next free row number."""
    n = start
    with storage.begin() as conn:
        for table in reflect_tenant(conn).sorted_tables:
            have = conn.execute(select(func.count()).select_from(table)).scalar()
            for _ in range(max(0, ROWS_PER_TABLE - have)):
                n += 1
                row = {c.name: _value(c, n, conn, table) for c in table.columns
                       if not (c.primary_key and c.autoincrement is not False and isinstance(c.type, Integer)
                               and not c.foreign_keys)}
                conn.execute(insert(table).values(**row))
    return n


def _step(storage: TenantStorage, scripts: ScriptDirectory, revision: str, target: str | None,
          downgrade: bool) -> ChainBreak | None:
    """Move one revision and return how it broke the rows, if it did."""
    direction = "downgrade" if downgrade else "upgrade"
    before = _counts(storage)
    try:
        migrate_tenant(storage, scripts, target, downgrade=downgrade)
    except Exception as e:  # the chain itself fails here: that is the finding
        return ChainBreak(revision, direction, "fails", str(e).splitlines()[0])
    after = _counts(storage)
    lost = {table: (count, after[table]) for table, count in before.items()
            if table in after and after[table] < count}
    if lost:
        detail = ", ".join(f"{table} {old} -> {new} rows" for table, (old, new) in sorted(lost.items()))
        return ChainBreak(revision, direction, "lost-rows", f"rows lost in tables it does not drop: {detail}")
    return None


def verify_storage(storage: TenantStorage, scripts: ScriptDirectory) -> ChainVerdict:
    """Walk base -> head -> base -> head on an empty scratch tenant's storage, one revision at a time."""
    verdict = ChainVerdict(storage.dialect)
    chain = [s for s in reversed(list(scripts.walk_revisions()))]
    before_upgrade: dict[str, MetaData] = {}
    n = 0
    walks = [("upgrade", chain), ("downgrade", list(reversed(chain))), ("upgrade", chain)]
    for direction, scripts_in_order in walks:
        for script in scripts_in_order:
            downgrade = direction == "downgrade"
            try:
                n = fill(storage, n)
            except Exception as e:  # a table the filler cannot satisfy: say so rather than guess
                verdict.broken = ChainBreak(script.revision, direction, "fill", f"cannot fill the tables before "
                                            f"this step: {str(e).splitlines()[0]}")
                return verdict
            if not downgrade and script.revision not in before_upgrade:
                with storage.begin() as conn:
                    before_upgrade[script.revision] = reflect_tenant(conn)
            target = script.down_revision if downgrade else script.revision
            broken = _step(storage, scripts, script.revision, target, downgrade)
            verdict.steps += 1
            if broken is None and downgrade:
                with storage.begin() as conn:
                    differences = compare_tenant(storage, conn, before_upgrade[script.revision])
                if differences:
                    shown = "; ".join(f"{d.kind} {d.table or ''}.{d.name or ''} {d.detail}" for d in differences[:3])
                    broken = ChainBreak(script.revision, direction, "schema",
                                        f"the downgrade does not restore the schema before the upgrade: {shown}")
            if broken is not None:
                verdict.broken = broken
                return verdict
    return verdict


def _scratch(dialect: str, tenancy: Tenancy, folder: Path) -> TenantStorage:
    slug = f"verify_{uuid.uuid4().hex[:12]}"
    if dialect == "sqlite":
        return SqliteFileStorage(slug, folder / f"{slug}.sqlite3", tenancy.engines)
    urls = [tenancy.settings.control_url] + [t.database_url or "" for t in tenancy.registry.all()]
    url = next((u for u in urls if u.startswith("postgresql")), None)
    if url is None:
        raise InvalidUsage("verify-chain --dialect postgresql needs a PostgreSQL database: set DATABASE_URL "
                           "or register a tenant with --database-url")
    return PostgresSchemaStorage(slug, url, tenancy.engines.get(url))


def verify_chain(tenancy: Tenancy, dialects: list[str]) -> list[ChainVerdict]:
    """Verify the tenant chain on a scratch tenant of each dialect; the scratch tenants are removed after."""
    ensure_control(tenancy)
    merges = [s.revision for s in tenancy.scripts.walk_revisions() if isinstance(s.down_revision, tuple | list)]
    if merges or len(tenancy.heads()) > 1:
        raise InvalidUsage("verify-chain walks a linear chain one revision at a time; this one branches or merges "
                           f"({', '.join(merges) or ', '.join(tenancy.heads())})")
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="verify-chain-") as folder:
        for dialect in dialects:
            storage = _scratch(dialect, tenancy, Path(folder))
            storage.create()
            try:
                verdicts.append(verify_storage(storage, tenancy.scripts))
            finally:
                storage.drop()
    return verdicts
