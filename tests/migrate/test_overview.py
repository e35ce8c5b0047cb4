"""list-tenants and tenant-versions read the fleet in bulk: the cost does not grow with one query per tenant."""

from sqlalchemy import event

from tenants.fleet.create import create_tenant
from tenants.migrate.overview import tenant_overview, version_rows


def count_checkouts(tenancy) -> list[object]:
    seen: list[object] = []
    event.listen(tenancy.control_engine, "checkout", lambda *args: seen.append(args))
    return seen


def test_overview_reads_every_tenant_without_a_connection_per_tenant(tenancy, backend):
    slugs = ["acme", "beta", "gamma", "delta"]
    for slug in slugs:
        create_tenant(tenancy, slug)
    head = tenancy.head()
    seen = count_checkouts(tenancy)
    rows = tenant_overview(tenancy)
    assert [(r["slug"], r["revision"], r["at_head"], r["error"]) for r in rows] == \
        [(s, head, True, None) for s in sorted(slugs)]
    if backend == "postgresql":  # tenants live in the control database: its pool serves every read
        assert len(seen) <= 3, f"{len(seen)} checkouts for {len(slugs)} tenants"
    assert [(r["slug"], r["pending"]) for r in version_rows(tenancy)] == [(s, 0) for s in sorted(slugs)]


def test_overview_names_a_tenant_whose_storage_is_gone(tenancy):
    create_tenant(tenancy, "acme")
    create_tenant(tenancy, "beta")
    tenancy.storage("beta").drop()
    rows = {r["slug"]: r for r in tenant_overview(tenancy)}
    assert rows["acme"]["at_head"] and rows["acme"]["error"] is None
    assert not rows["beta"]["at_head"] and rows["beta"]["revision"] is None
    assert "missing" in rows["beta"]["error"]
