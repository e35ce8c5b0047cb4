"""Tenant isolation: a session bound to one tenant never sees another's rows."""

import threading

from sqlalchemy import select

from portal.models import Product
from tenants.core.binding import tenant_session
from tenants.fleet.create import create_tenant
from tenants.migrate.control import ensure_control
from tests.factories import make_product


def skus(storage) -> set[str]:
    with tenant_session(storage) as session:
        return set(session.scalars(select(Product.sku)))


def test_rows_written_in_one_tenant_are_invisible_in_another(tenancy):
    create_tenant(tenancy, "acme")
    create_tenant(tenancy, "globex")
    acme, globex = tenancy.storage("acme"), tenancy.storage("globex")
    make_product(acme, sku="ACME-1")
    make_product(globex, sku="GLOBEX-1")
    assert skus(acme) == {"ACME-1"}
    assert skus(globex) == {"GLOBEX-1"}


def test_same_unique_value_may_exist_in_two_tenants(tenancy):
    create_tenant(tenancy, "acme")
    create_tenant(tenancy, "globex")
    make_product(tenancy.storage("acme"), sku="SAME")
    make_product(tenancy.storage("globex"), sku="SAME")
    assert skus(tenancy.storage("acme")) == skus(tenancy.storage("globex")) == {"SAME"}


def test_eight_threads_switching_tenants_on_a_pooled_engine_never_mix(tenancy):
    slugs = [f"t{i}" for i in range(4)]
    for slug in slugs:
        create_tenant(tenancy, slug)
    errors: list[str] = []

    def worker(n: int) -> None:
        for i in range(15):
            slug = slugs[(n + i) % len(slugs)]
            storage = tenancy.storage(slug)
            try:
                make_product(storage, sku=f"{slug}-{n}-{i}")
                seen = skus(storage)
                foreign = {s for s in seen if not s.startswith(f"{slug}-")}
                if foreign:
                    errors.append(f"{slug} saw {sorted(foreign)[:3]}")
            except Exception as e:  # collected and asserted below
                errors.append(f"{slug}: {e!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(len(skus(tenancy.storage(s))) for s in slugs) == 8 * 15


def test_postgres_pooled_connection_keeps_no_tenant_search_path(pg_control_url, tmp_path):
    from sqlalchemy import text

    from tenants.core.settings import TenantSettings
    from tenants.core.tenancy import Tenancy

    tenancy = Tenancy(TenantSettings(control_url=pg_control_url, tenant_dir=tmp_path))
    try:
        ensure_control(tenancy)
        create_tenant(tenancy, "acme")
        storage = tenancy.storage("acme")
        with storage.begin() as conn:
            assert conn.execute(text("SHOW search_path")).scalar() == '"tenant_acme"'
        with storage.engine.connect() as conn:  # the same pool, after the transaction
            assert "tenant_acme" not in conn.execute(text("SHOW search_path")).scalar()
    finally:
        tenancy.close()
