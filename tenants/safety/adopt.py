"""Adopt an existing schema or SQLite file as a tenant: find the revision its shape matches, stamp it, register it.

The reference schema of every revision is built once, by walking the chain one revision at a
time in a scratch place (a schema in a transaction that is rolled back on PostgreSQL, an
in-memory database on SQLite), and compared with the live schema by the drift machinery
(tenants.safety.drift). Only an exact match is adopted; rows are never touched. A schema that
matches nothing, or another revision than its own alembic_version says, is refused and nothing
is registered.
"""

import os
import socket
import time
import uuid
from dataclasses import dataclass

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, create_engine, text
from sqlalchemy.exc import DBAPIError

from tenants.core.backends import storage_for
from tenants.core.clock import utcnow
from tenants.core.engines import check_database_url
from tenants.core.errors import InvalidUsage, TenantExists
from tenants.core.ledger import TenantResult, finish_run, record_result, start_run
from tenants.core.names import quote_ident, validate_slug
from tenants.core.registry import Tenant
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.migrate import driver
from tenants.migrate.control import ensure_control
from tenants.migrate.migrator import alembic_options
from tenants.safety.drift import Difference, compare_tenant, reflect_tenant
from tenants.safety.errors import AdoptionRefused

#: How many differences of the closest revision a refusal shows.
SHOWN = 10


@dataclass(frozen=True)
class Adoption:
    """What adopting did: the tenant registered, the revision its shape matched, whether it was stamped."""

    tenant: Tenant
    revision: str
    stamped: bool


def reference_schemas(scripts: ScriptDirectory, storage: TenantStorage) -> list[tuple[str, MetaData]]:
    """Return (revision, reflected schema) after each revision of the chain, in upgrade order, in its dialect."""
    heads = driver.joined_heads(scripts.get_heads())
    if heads is None:
        return []
    steps = driver.steps_between(scripts, None, heads)
    if storage.dialect == "sqlite":
        engine = create_engine("sqlite://")
        try:
            with engine.begin() as scratch:
                return _walk(scratch, steps, {"render_as_batch": True})
        finally:
            engine.dispose()
    # A scratch schema in a transaction that is always rolled back: nothing persists or shows elsewhere.
    scratch_schema = f"tenant_portal_adopt_{uuid.uuid4().hex[:12]}"
    with storage.engine.connect() as scratch, scratch.begin() as trans:
        try:
            scratch.execute(text("CREATE SCHEMA " + quote_ident(scratch_schema)))
            scratch.execute(text("SELECT set_config('search_path', :p, true)"), {"p": quote_ident(scratch_schema)})
            return _walk(scratch, steps, {"version_table_schema": scratch_schema, "transactional_ddl": True})
        finally:
            trans.rollback()


def _walk(conn: Connection, steps: driver.Steps, opts: dict) -> list[tuple[str, MetaData]]:
    found = []
    for step in steps:
        reached = driver.run_steps(conn, [step], opts)
        if reached is not None:
            found.append((reached, reflect_tenant(conn)))
    return found


def match_revision(tenancy: Tenancy, storage: TenantStorage, conn: Connection) -> tuple[str | None, str]:
    """Return (the tenant's alembic_version, the revision its live schema matches); raise AdoptionRefused."""
    recorded = driver.current_revision(conn, alembic_options(storage))
    known = {script.revision for script in tenancy.scripts.walk_revisions()}
    unknown = [head for head in driver.split_heads(recorded) if head not in known]
    if unknown:
        raise AdoptionRefused(f"{storage.describe()} has alembic_version {recorded}, which is not in the revision "
                              "chain; nothing was registered")
    if not reflect_tenant(conn).tables:
        raise AdoptionRefused(f"{storage.describe()} has no tables: there is nothing to adopt (create-tenant builds "
                              "a new tenant once the empty schema or file is removed); nothing was registered")
    closest: tuple[str, list[Difference]] | None = None
    matches = []
    for revision, expected in reference_schemas(tenancy.scripts, storage):
        differences = compare_tenant(storage, conn, expected)
        if not differences:
            matches.append(revision)
        elif closest is None or len(differences) <= len(closest[1]):
            closest = (revision, differences)
    if recorded is not None and recorded not in matches:
        shape = f"matches {', '.join(matches)}" if matches else "matches no revision"
        raise AdoptionRefused(f"{storage.describe()} says it is at {recorded} (alembic_version) but its schema "
                              f"{shape}: repair it or its alembic_version first; nothing was registered")
    if recorded is not None:
        return recorded, recorded
    if len(matches) > 1:
        raise AdoptionRefused(f"{storage.describe()} matches several revisions with one schema ({', '.join(matches)}):"
                              " stamp the right one in its alembic_version, then adopt it; nothing was registered")
    if not matches:
        raise AdoptionRefused(_no_match(storage, closest))
    return None, matches[0]


def _no_match(storage: TenantStorage, closest: tuple[str, list[Difference]] | None) -> str:
    if closest is None:
        return f"{storage.describe()} matches no revision of the chain; nothing was registered"
    revision, differences = closest
    shown = "\n".join(f"  {d.kind}: {d.table or '-'}{'.' + d.name if d.name else ''} ({d.detail})"
                      for d in differences[:SHOWN])
    more = f"\n  ... and {len(differences) - SHOWN} more" if len(differences) > SHOWN else ""
    return (f"{storage.describe()} matches no revision of the chain; nothing was registered. The closest is "
            f"{revision}, with {len(differences)} difference(s):\n{shown}{more}")


def adopt_tenant(tenancy: Tenancy, slug: str, display_name: str | None = None, database_url: str | None = None,
                 started_by: str | None = None) -> Adoption:
    """Register an existing schema or SQLite file as tenant `slug` at the revision its schema matches.

    Under the tenant's lock: compare, stamp alembic_version if it has none, then registry and
    ledger. Refused (nothing registered, nothing changed): an unknown or taken slug, missing
    storage, a schema that matches no revision, or one whose alembic_version disagrees with it.
    """
    validate_slug(slug)
    if database_url is not None:
        check_database_url(database_url)
    ensure_control(tenancy)
    s = tenancy.settings
    if tenancy.registry.find(slug) is not None:
        raise TenantExists(f"tenant {slug!r} is already registered; nothing was changed")
    storage = storage_for(slug, database_url, s.control_url, s.tenant_dir, tenancy.engines)
    if not storage.exists():
        raise InvalidUsage(f"no {storage.describe()} to adopt; nothing was registered")
    started, began = time.perf_counter(), utcnow()
    tenancy.registry.add(slug, display_name or slug.replace("_", " ").title(), database_url,
                         (socket.gethostname(), os.getpid()))
    try:
        with storage.begin(exclusive=True, lock_timeout=s.lock_timeout,
                           timeouts=(s.lock_timeout, s.statement_timeout)) as conn:
            recorded, revision = match_revision(tenancy, storage, conn)
            if recorded is None:
                driver.stamp(conn, tenancy.scripts, revision, alembic_options(storage))
    except DBAPIError as e:  # e.g. a file that is not a SQLite database
        tenancy.registry.remove(slug)
        reason = str(getattr(e, "orig", e)).strip().splitlines()
        raise InvalidUsage(f"cannot read {storage.describe()}: {reason[0] if reason else e}; "
                           "nothing was registered") from e
    except BaseException:
        tenancy.registry.remove(slug)
        raise
    engine = tenancy.control_engine
    run_id = start_run(engine, "create-tenant", revision, started_by, {"tenant": slug, "adopt": True}, total=1)
    detail = f"adopted: its schema matches {revision}" + ("" if recorded else f"; stamped {revision}")
    record_result(engine, run_id, TenantResult(slug, "ok", recorded, revision,
                                               (time.perf_counter() - started) * 1000, None, detail), began)
    finish_run(engine, run_id, "ok", {"ok": 1})
    tenancy.registry.set_status(slug, "active")
    return Adoption(tenancy.registry.get(slug), revision, recorded is None)
