"""Scaffolding for the fleet tests: temporary revision chains, tenants with data, live reads."""

import dataclasses
from pathlib import Path

from sqlalchemy import text

from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.migrate.migrator import current_revision
from tests.chains import add_revision, copy_chain

# A revision that takes long enough per tenant for a test to act while a run is under way.
# Slow on a tenant only: the lint's scratch run of the chain on in-memory SQLite (no file) does not wait.
SLOW = """
if op.get_context().dialect.name == "postgresql":
    op.execute("SELECT pg_sleep({seconds})")
elif op.get_bind().engine.url.database:
    import time
    time.sleep({seconds})
"""

# Records that it ran: a second application would show as a second row (or fail on the table).
LOGGED = """
op.create_table("applied_log", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.String(40)))
op.execute("INSERT INTO applied_log (note) VALUES ('{rev}')")
"""


def write_chain(tmp_path: Path, revisions: dict[str, tuple[str, str, str]], name: str = "chain") -> Path:
    """Copy migrations/ and add {rev: (down_revision, upgrade body, downgrade body)}."""
    chain = copy_chain(tmp_path, name)
    for rev, (down, up, back) in revisions.items():
        add_revision(chain, rev, down, up, doc=f"test revision {rev}", downgrade=back)
    return chain


def with_chain(settings: TenantSettings, chain: Path) -> TenantSettings:
    """Return `settings` pointed at another revision chain."""
    return dataclasses.replace(settings, revision_dir=chain)


def make_tenants(tenancy: Tenancy, slugs: list[str], stock: int = 5) -> None:
    """Create tenants at the head of the project's chain, each with a role, a user and a product."""
    for slug in slugs:
        create_tenant(tenancy, slug)
        with tenancy.storage(slug).begin() as conn:
            conn.execute(text("INSERT INTO roles (id, name, description) VALUES (1, 'staff', 'Staff of " + slug
                              + "')"))
            conn.execute(text("INSERT INTO users (id, email, full_name, password_hash, active, created_at) "
                              "VALUES (1, :e, 'Ann Example', 'x', true, CURRENT_TIMESTAMP)"), {"e": f"ann@{slug}.test"})
            conn.execute(text("INSERT INTO products (id, name, sku, price, stock, active, created_at) VALUES "
                              "(1, 'Widget', 'W-1', 9.50, :s, true, CURRENT_TIMESTAMP)"), {"s": stock})


def live(tenancy: Tenancy, slug: str) -> str | None:
    """Return the tenant's own alembic_version."""
    return current_revision(tenancy.storage(slug))


def rows(tenancy: Tenancy, slug: str, sql: str) -> list[tuple]:
    """Run a read in the tenant and return its rows as tuples."""
    with tenancy.storage(slug).begin() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def has_table(tenancy: Tenancy, slug: str, table: str) -> bool:
    """Return whether the tenant has `table`."""
    from sqlalchemy import inspect

    storage = tenancy.storage(slug)
    with storage.begin() as conn:
        return inspect(conn).has_table(table, schema=storage.version_table_schema)


def columns(tenancy: Tenancy, slug: str, table: str) -> set[str]:
    """Return the column names of a tenant's table."""
    from sqlalchemy import inspect

    storage = tenancy.storage(slug)
    with storage.begin() as conn:
        return {column["name"] for column in inspect(conn).get_columns(table, schema=storage.version_table_schema)}
