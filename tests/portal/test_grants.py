"""Staff & grants in the console: tenant and model choices, refusals, and every grant change in History."""

import json

import pytest
from sqlalchemy import select

from tenants.core.control_schema import audit_log, staff, staff_grants
from tests.console_support import Console, csrf_token, login


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


def test_grant_editor_offers_tenants_and_models(console: Console, root) -> None:
    page = root.get("/admin/staff/edit/?id=2").get_data(as_text=True)  # alice, with grants
    for value in ("*", console.a, console.b, "products", "users", "tenants"):
        assert f'value="{value}"' in page


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
