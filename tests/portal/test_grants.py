"""Staff & grants in the console: tenant and model choices, refusals, and every grant change in History."""

import json

import pytest
from sqlalchemy import select

from tenants.core.control_schema import audit_log, staff, staff_grants
from tests.console_support import Console, csrf_token, login, register_tenants


def _new_staff(root, email: str, tenant: str, model: str = "products"):  # type: ignore[no-untyped-def]
    return root.post("/admin/staff/new/", data={
        "csrf_token": csrf_token(root, "/admin/staff/"), "email": email, "full_name": "", "active": "y",
        "password": "support password", "grants-0-tenant_slug": tenant, "grants-0-model": model,
        "grants-0-can_view": "y"})


def _grants(console: Console, email: str) -> list[tuple]:
    with console.tenancy.control_engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(staff_grants.c.tenant_slug, staff_grants.c.model, staff_grants.c.can_view,
                   staff_grants.c.can_change).join(staff, staff.c.id == staff_grants.c.staff_id)
            .where(staff.c.email == email).order_by(staff_grants.c.id))]


def _staff_exists(console: Console, email: str) -> bool:
    with console.tenancy.control_engine.connect() as conn:
        return conn.execute(select(staff.c.id).where(staff.c.email == email)).first() is not None


@pytest.mark.parametrize("tenant", ["acmee", "acme; drop", "ACME", "' OR 1=1 --", "%"])
def test_grant_for_an_unknown_tenant_is_refused(console: Console, root, tenant: str) -> None:
    page = _new_staff(root, "support@example.com", tenant)
    assert page.status_code == 200 and "Not a valid choice" in page.get_data(as_text=True)
    assert not _staff_exists(console, "support@example.com")


def test_star_grants_every_tenant(console: Console, root) -> None:
    assert _new_staff(root, "support@example.com", "*").status_code == 302
    assert _grants(console, "support@example.com") == [(None, "products", True, False)]
    support = console.app.test_client()
    assert login(support, "support@example.com", "support password").status_code == 302
    for slug in (console.a, console.b):
        assert support.get(f"/t/{slug}/admin/product/").status_code == 200


def test_grant_editor_offers_models_and_searches_tenants(console: Console, root) -> None:
    register_tenants(console.tenancy.control_engine, [f"bulk_{i:03d}" for i in range(60)])
    page = root.get("/admin/staff/edit/?id=2").get_data(as_text=True)  # alice: grants on acme
    for value in ("products", "users", "tenants"):
        assert f'value="{value}"' in page
    # The grant's tenant is Flask-Admin's select2 ajax field holding its own value, not a list of every tenant.
    assert 'data-role="select2-ajax"' in page and 'data-url="/admin/staff/grant-tenants/"' in page
    assert f'value="{console.a}"' in page
    assert "bulk_" not in page and f'value="{console.b}"' not in page


def test_grant_tenant_search_offers_every_tenant_first_then_matches(console: Console, root, alice) -> None:
    register_tenants(console.tenancy.control_engine, [f"bulk_{i:03d}" for i in range(60)], status="suspended")
    first = root.get("/admin/staff/grant-tenants/?query=").get_json()
    assert first[0] == ["*", "* (every tenant)"] and len(first) == 11  # "*" and a page of 10
    assert [slug for slug, _ in root.get("/admin/staff/grant-tenants/?query=bulk_05&offset=0").get_json()] == [
        f"bulk_05{i}" for i in range(10)]  # suspended tenants can be granted too
    assert root.get("/admin/staff/grant-tenants/?query=bulk&offset=10&limit=10").get_json()[0][0] == "bulk_010"
    assert len(root.get("/admin/staff/grant-tenants/?query=bulk&limit=1000").get_json()) == 20  # bounded
    assert alice.get("/admin/staff/grant-tenants/?query=").status_code == 403


def test_control_model_grant_needs_every_tenant(console: Console, root) -> None:
    page = _new_staff(root, "support@example.com", console.a, model="tenants")
    assert page.status_code == 200 and "control-plane model" in page.get_data(as_text=True)
    assert not _staff_exists(console, "support@example.com")


def test_every_grant_change_is_in_history(console: Console, root) -> None:
    assert _new_staff(root, "support@example.com", console.a).status_code == 302
    with console.tenancy.control_engine.connect() as conn:
        staff_id, grant_id = conn.execute(select(staff.c.id, staff_grants.c.id).join(
            staff_grants, staff.c.id == staff_grants.c.staff_id).where(staff.c.email == "support@example.com")).one()
    base = {"csrf_token": csrf_token(root, "/admin/staff/"), "email": "support@example.com", "full_name": "",
            "active": "y", "grants-0-id": str(grant_id), "grants-0-tenant_slug": console.a,
            "grants-0-model": "products", "grants-0-can_view": "y"}
    # 1. a right added to an existing grant; 2. a second grant; 3. the first grant removed
    assert root.post(f"/admin/staff/edit/?id={staff_id}", data={**base, "grants-0-can_change": "y"}).status_code == 302
    assert root.post(f"/admin/staff/edit/?id={staff_id}", data={
        **base, "grants-0-can_change": "y", "grants-1-tenant_slug": "*", "grants-1-model": "users",
        "grants-1-can_view": "y"}).status_code == 302
    assert _grants(console, "support@example.com") == [
        (console.a, "products", True, True), (None, "users", True, False)]
    assert root.post(f"/admin/staff/edit/?id={staff_id}", data={
        **base, "grants-0-can_change": "y", "del-grants-0": "y", "grants-1-tenant_slug": "*",
        "grants-1-model": "users", "grants-1-can_view": "y"}).status_code == 302
    assert _grants(console, "support@example.com") == [(None, "users", True, False)]
    with console.tenancy.control_engine.connect() as conn:
        entries = conn.execute(select(audit_log.c.action, audit_log.c.changes).where(
            audit_log.c.model == "staff", audit_log.c.object_id == str(staff_id)).order_by(audit_log.c.id)).all()
    assert [e.action for e in entries] == ["add", "change", "change", "change"]
    added = json.loads(entries[0].changes)["grants"]
    assert added == [f"products on {console.a}: view"]
    changes = [json.loads(e.changes)["grants"] for e in entries[1:]]
    assert changes[0] == [[f"products on {console.a}: view"], [f"products on {console.a}: view/change"]]
    assert changes[1][1] == [f"products on {console.a}: view/change", "users on all tenants: view"]
    assert changes[2][1] == ["users on all tenants: view"]
