"""Read every tenant's current revision in bulk: one query per PostgreSQL database, one open per SQLite file.

Reads take no tenant lock: they see each tenant's last committed revision, which is what a
plan needs. The work itself re-reads the revision under the tenant's lock.
"""

import functools
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from tenants.core.backends import url_backend
from tenants.core.engines import display_url
from tenants.core.errors import RegistryMissing
from tenants.core.names import SCHEMA_PREFIX, quoted_schema, schema_name, validate_slug
from tenants.core.registry import Tenant
from tenants.core.tenancy import Tenancy
from tenants.migrate.driver import joined_heads

# One UNION ALL over at most this many schemas per statement. PostgreSQL's planning time grows
# faster than the number of arms: at 1,000 tenants, chunks of 500 took about twice as long as
# chunks of 50 (bench/noop.py); below ~50 the round trips start to count.
CHUNK = 50
# Databases read at the same time (one session each) by a bulk read over several of them.
MAX_READERS = 8

# Each wanted schema found, by its position in the list of slugs (1-based), with the oid of its
# alembic_version table (NULL: not versioned yet). The names come as a set to join (unnest), not
# as `nspname = ANY(...)`: with the array as a filter the planner chose a nested loop over every
# alembic_version, quadratic in the fleet (440 ms at 3,000 tenants against 5 ms joined). Positions,
# not names, come back: the client holds no second copy of every schema name.
_SCHEMAS = text(
    "SELECT wanted.i, c.oid FROM unnest(CAST(:slugs AS text[])) WITH ORDINALITY AS wanted(slug, i)"
    " JOIN pg_namespace n ON n.nspname = CAST(:prefix || wanted.slug AS name)"
    " LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'alembic_version' AND c.relkind IN ('r', 'p')"
)


@dataclass(frozen=True)
class VersionRead:
    """A tenant's revision as read now (a branched tenant's heads, joined); `error` says why it could not be read."""

    revision: str | None
    error: str | None = None


def read_versions(tenancy: Tenancy, tenants: Iterable[Tenant]) -> dict[str, VersionRead]:
    """Return {slug: VersionRead} for the given tenants, reading each database once."""
    settings = tenancy.settings
    by_url: dict[str, list[Tenant]] = defaultdict(list)
    for tenant in tenants:
        by_url[tenant.database_url or settings.control_url].append(tenant)
    reads: dict[str, VersionRead] = {}
    servers = {url: [t.slug for t in group] for url, group in by_url.items() if url_backend(url) == "postgresql"}
    if len(servers) > 1:
        # Each database's read waits on its server (a new session builds its catalog cache for every
        # tenant table it opens): several databases are read at once, one thread and session each.
        with ThreadPoolExecutor(min(len(servers), MAX_READERS)) as pool:
            for found in pool.map(lambda item: _read_postgres(tenancy, *item), servers.items()):
                reads.update(found)
    elif servers:
        reads.update(_read_postgres(tenancy, *next(iter(servers.items()))))
    for url, group in by_url.items():
        if url in servers:
            continue
        if url_backend(url) == "sqlite":
            for tenant in group:
                reads[tenant.slug] = _read_sqlite(sqlite_path(tenant, settings.tenant_dir))
        else:
            for tenant in group:
                reads[tenant.slug] = VersionRead(None, f"unsupported database {display_url(url)!r}")
    return reads


def sqlite_path(tenant: Tenant, tenant_dir: Path) -> Path:
    """Return the tenant's SQLite file (the same rule as tenants.core.backends.storage_for)."""
    if tenant.database_url:
        return Path(make_url(tenant.database_url).database or "")
    return Path(tenant_dir) / f"{tenant.slug}.sqlite3"


def _read_sqlite(path: Path) -> VersionRead:
    if not path.exists():
        return VersionRead(None, f"tenant file {path} is missing")
    try:
        # Read-only and without SQLAlchemy: a bulk read over many files opens no engine per file.
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'")
            if found.fetchone() is None:
                return VersionRead(None)
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as e:
        return VersionRead(None, f"cannot read tenant file {path}: {e}")
    return _one_revision(rows)


def _one_revision(rows: list) -> VersionRead:
    # Several rows are a branched state (e.g. after a downgrade below a merge): the tenant is at all of them.
    return _at(joined_heads(row[0] for row in rows))


@functools.lru_cache(maxsize=256)
def _at(revision: str | None) -> VersionRead:
    # One read per revision, shared by every tenant at it (a fleet is at a few revisions): not one per tenant.
    return VersionRead(revision)


def _read_postgres(tenancy: Tenancy, url: str, slugs: list[str]) -> dict[str, VersionRead]:
    try:
        with tenancy.engines.get(url).connect() as conn:
            return _read_schemas(conn, slugs)
    except OperationalError as e:
        reason = str(getattr(e, "orig", e)).strip().splitlines()
        error = f"cannot reach database {display_url(url)}: {reason[0] if reason else e}"
        return {slug: VersionRead(None, error) for slug in slugs}


def _read_schemas(conn: Connection, slugs: list[str]) -> dict[str, VersionRead]:
    for slug in slugs:
        validate_slug(slug)  # a schema name is made from each, in the statement
    found = dict(conn.execute(_SCHEMAS, {"slugs": slugs, "prefix": SCHEMA_PREFIX}).all())
    reads = {slug: VersionRead(None, f"schema {schema_name(slug)} is missing")
             for index, slug in enumerate(slugs, 1) if index not in found}
    reads.update({slugs[index - 1]: _at(None) for index, oid in found.items() if oid is None})
    tables = [(oid, slugs[index - 1]) for index, oid in found.items() if oid is not None]
    start = 0
    while start < len(tables):
        # Every chunk in one transaction (no savepoint per chunk: two round trips fewer each);
        # a chunk that fails is read one schema at a time, and the rest go on in a new transaction.
        try:
            with conn.begin_nested() if conn.in_transaction() else conn.begin():
                while start < len(tables):
                    reads.update(_union_read(conn, dict(tables[start:start + CHUNK])))
                    start += CHUNK
        except (DBAPIError, KeyError):
            # A schema vanished or was replaced between the catalogue read and this one.
            reads.update({slug: _single_read(conn, slug) for _, slug in tables[start:start + CHUNK]})
            start += CHUNK
    return reads


def _union_read(conn: Connection, tables: dict[int, str]) -> dict[str, VersionRead]:
    """Read many schemas' alembic_version in one statement; names quoted by tenants.core.names.

    Each row names its table by `tableoid` (matched to the catalogue read), so the statement
    carries no parameters: nothing to bind or escape for many arms. Raises DBAPIError, or
    KeyError for a table that is not the one the catalogue read saw.
    """
    sql = " UNION ALL ".join("SELECT tableoid, CAST(version_num AS text) FROM " + quoted_schema(slug)
                             + ".alembic_version" for slug in tables.values())
    rows: dict[str, list] = {slug: [] for slug in tables.values()}
    for oid, revision in conn.exec_driver_sql(sql):
        rows[tables[oid]].append((revision,))
    return {slug: _one_revision(found) for slug, found in rows.items()}


def _single_read(conn: Connection, slug: str) -> VersionRead:
    try:
        with conn.begin_nested() if conn.in_transaction() else conn.begin():
            rows = conn.execute(text("SELECT version_num FROM " + quoted_schema(slug) + ".alembic_version")).all()
    except DBAPIError as e:
        return VersionRead(None, str(getattr(e, "orig", e)).strip().splitlines()[0])
    return _one_revision(rows)


def fleet_pages(tenancy: Tenancy) -> Iterator[list[Tenant]]:
    """Yield every registered tenant, a page at a time (settings.plan_page), in slug order.

    An empty registry beside tenant schemas or files raises RegistryMissing (_check_registry_not_lost).
    """
    empty = True
    for page in tenancy.registry.pages(tenancy.settings.plan_page):
        empty = False
        yield page
    if empty:
        _check_registry_not_lost(tenancy)


def _check_registry_not_lost(tenancy: Tenancy) -> None:
    """Raise RegistryMissing when the registry is empty but tenant schemas or files are there.

    An empty or replaced control database must not make the fleet look empty: every command
    would then report nothing to do, and create-tenant would reuse the slugs of live tenants.
    """
    settings = tenancy.settings
    found: list[str] = []
    if settings.control_url.startswith("postgresql"):
        with tenancy.control_engine.connect() as conn:
            found = conn.execute(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p ORDER BY nspname"),
                                 {"p": SCHEMA_PREFIX.replace("_", "\\_") + "%"}).scalars().all()
        found = [name for name in found if not name.startswith(SCHEMA_PREFIX + "verify_")]  # verify-chain's scratch
    elif Path(settings.tenant_dir).is_dir():
        found = sorted(p.name for p in Path(settings.tenant_dir).glob("*.sqlite3"))
    if found:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise RegistryMissing(f"the tenant registry is empty, but {len(found)} tenant schema(s) or file(s) exist "
                              f"({shown}): the control database looks new or replaced; point DATABASE_URL at the "
                              "right one or restore it; nothing was changed")
