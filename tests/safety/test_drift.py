"""Drift: each tenant's live schema against its own revision, and its alembic_version against the ledger."""

import sqlite3

from sqlalchemy import text

from tenants.fleet.create import create_tenant
from tenants.migrate.migrator import migrate_tenant
from tenants.safety.drift import check_drift


def by_slug(reports) -> dict:  # type: ignore[no-untyped-def]
    return {r.slug: r for r in reports}


def hand_ddl(storage, sql: str) -> None:  # type: ignore[no-untyped-def]
    """Change a tenant's schema behind the chain's back, as an operator at a SQL prompt would."""
    if storage.dialect == "sqlite":
        conn = sqlite3.connect(storage.path)
        conn.execute(sql)
        conn.commit()
        conn.close()
    else:
        with storage.begin() as conn:
            conn.execute(text(sql))


def test_clean_fleet_has_no_drift(tenancy):
    create_tenant(tenancy, "acme")
    [report] = check_drift(tenancy)
    assert (report.slug, report.revision, report.ledger_revision, report.drifted) == ("acme", "0003", "0003", False)


def test_column_added_by_hand_is_reported_for_that_tenant_only(tenancy):
    for slug in ("acme", "globex"):
        create_tenant(tenancy, slug)
    hand_ddl(tenancy.storage("globex"), "ALTER TABLE products ADD COLUMN colour VARCHAR(20)")
    reports = by_slug(check_drift(tenancy))
    assert not reports["acme"].drifted
    assert [(d.kind, d.table, d.name) for d in reports["globex"].differences] == [
        ("extra-column", "products", "colour")]


def test_tenant_is_compared_with_the_schema_of_its_own_revision(tenancy):
    for slug in ("acme", "globex"):
        create_tenant(tenancy, slug)
    storage = tenancy.storage("acme")
    # Moved back outside the ledger: the schema matches 0002, but the ledger still says 0003.
    migrate_tenant(storage, tenancy.scripts, "0002", downgrade=True)
    hand_ddl(storage, "CREATE INDEX ix_products_name ON products (name)")
    hand_ddl(storage, "DROP TABLE users_roles")
    reports = by_slug(check_drift(tenancy))
    acme = reports["acme"]
    assert acme.revision == "0002" and acme.ledger_revision == "0003"
    assert sorted((d.kind, d.table, d.name) for d in acme.differences) == [
        ("extra-index", "products", "ix_products_name"), ("ledger", None, None),
        ("missing-table", "users_roles", None)]
    assert not reports["globex"].drifted


def test_unreachable_tenant_is_reported_not_fatal(tenancy):
    for slug in ("acme", "globex"):
        create_tenant(tenancy, slug)
    tenancy.storage("acme").drop()
    reports = by_slug(check_drift(tenancy))
    assert reports["acme"].drifted and reports["acme"].error
    assert not reports["globex"].drifted
