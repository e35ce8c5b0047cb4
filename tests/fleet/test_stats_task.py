"""`for-each-tenant stats`: every tenant's row counts recorded in the control plane, on both backends."""

from typing import Any

from sqlalchemy import select

from tenants.core.control_schema import tenant_stats, tenants
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import for_each_tenant
from tenants.migrate.lifecycle import drop_tenant
from tenants.migrate.selection import Selection
from tests.conftest import run_manage
from tests.factories import make_product, make_user


def stats(tenancy: Tenancy, slug: str) -> dict[str, Any]:
    """Return {table: count} recorded for `slug`, and the key they were recorded under."""
    s = tenant_stats.c
    with tenancy.control_engine.connect() as conn:
        found = conn.execute(select(s.table_name, s.row_count, s.tenant_key).where(s.tenant_slug == slug)).all()
    return {"counts": {r.table_name: r.row_count for r in found}, "keys": {r.tenant_key for r in found}}


def account_key(tenancy: Tenancy, slug: str) -> str:
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(tenants.c.account_key).where(tenants.c.slug == slug)).scalar_one()


def test_stats_count_every_table_of_every_tenant(tenancy: Tenancy) -> None:
    for slug in ("acme", "globex"):
        create_tenant(tenancy, slug)
    acme = tenancy.storage("acme")
    for i in range(3):
        make_product(acme, name=f"P{i}", sku=f"P-{i}")
    make_user(acme, role="admin", email="ada@acme.example")
    make_user(acme, role="staff", email="bob@acme.example")
    report = for_each_tenant(tenancy, "stats", Selection(), options=RunOptions(jobs=2))
    assert report.exit_code == 0 and {r.status for r in report.results} == {"ok"}, report.to_dict()
    recorded = stats(tenancy, "acme")
    assert recorded["counts"] == {"products": 3, "users": 2, "roles": 2, "users_roles": 2}
    assert recorded["keys"] == {account_key(tenancy, "acme")}
    assert stats(tenancy, "globex")["counts"] == {"products": 0, "users": 0, "roles": 0, "users_roles": 0}
    make_product(acme, name="P9", sku="P-9")  # a refresh replaces the counts, never adds rows
    assert for_each_tenant(tenancy, "stats", Selection(tenants=("acme",))).exit_code == 0
    assert stats(tenancy, "acme")["counts"]["products"] == 4
    details = {r.slug: r.detail for r in for_each_tenant(tenancy, "stats", Selection()).results}
    assert "products 4" in details["acme"] and "products 0" in details["globex"]  # also in the run's records


def test_a_recreated_tenant_has_none_of_the_old_stats(tenancy: Tenancy) -> None:
    create_tenant(tenancy, "victim")
    make_product(tenancy.storage("victim"), name="Old", sku="OLD-1")
    assert for_each_tenant(tenancy, "stats", Selection()).exit_code == 0
    old_key = account_key(tenancy, "victim")
    drop_tenant(tenancy, "victim")
    create_tenant(tenancy, "victim")
    new_key = account_key(tenancy, "victim")
    assert new_key != old_key
    assert for_each_tenant(tenancy, "stats", Selection()).exit_code == 0
    recorded = stats(tenancy, "victim")
    assert recorded["keys"] == {new_key} and recorded["counts"]["products"] == 0


def test_stats_from_the_command_line(tenancy: Tenancy, cli_env: dict[str, str]) -> None:
    create_tenant(tenancy, "acme")
    make_product(tenancy.storage("acme"), name="Anvil", sku="A-1")
    done = run_manage(["for-each-tenant", "stats"], cli_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert stats(tenancy, "acme")["counts"]["products"] == 1
