"""Create, suspend, resume and drop a tenant from the Tenants view: same library calls as the CLI, in History."""

from sqlalchemy import select

from portal.permissions import Grant
from tenants.core.control_schema import audit_log
from tests.console_support import Console, add_staff, csrf_token, signed_in


def _history(console: Console) -> list[tuple]:
    with console.tenancy.control_engine.connect() as conn:
        return [(r.tenant_slug, r.model, r.action) for r in conn.execute(
            select(audit_log).where(audit_log.c.model == "tenants").order_by(audit_log.c.id))]


def test_superuser_creates_suspends_resumes_and_drops_a_tenant(console: Console, root) -> None:
    token = csrf_token(root, "/admin/tenants/create/")
    response = root.post("/admin/tenants/create/", data={"csrf_token": token, "slug": "initech", "name": "Initech"})
    assert response.status_code == 302
    tenant = console.tenancy.registry.get("initech")
    assert tenant.status == "active" and console.tenancy.storage(tenant).exists()
    assert root.get("/t/initech/admin/product/").status_code == 200
    assert root.post("/admin/tenants/status/", data={"csrf_token": token, "slug": "initech", "do": "suspend"}
                     ).status_code == 302
    assert console.tenancy.registry.get("initech").status == "suspended"
    assert root.get("/t/initech/admin/product/").status_code == 403
    assert root.post("/admin/tenants/status/", data={"csrf_token": token, "slug": "initech", "do": "resume"}
                     ).status_code == 302
    assert console.tenancy.registry.get("initech").status == "active"
    page = root.get("/admin/tenants/drop/?slug=initech")
    assert page.status_code == 200 and "Type the tenant" in page.get_data(as_text=True)
    wrong = root.post("/admin/tenants/drop/?slug=initech", data={"csrf_token": token, "slug": "initech",
                                                                  "confirm": "initec"})
    assert wrong.status_code == 200 and console.tenancy.registry.find("initech") is not None
    dropped = root.post("/admin/tenants/drop/?slug=initech", data={"csrf_token": token, "slug": "initech",
                                                                    "confirm": "initech"})
    assert dropped.status_code == 302 and console.tenancy.registry.find("initech") is None
    assert _history(console) == [("initech", "tenants", "add"), ("initech", "tenants", "change"),
                                 ("initech", "tenants", "change"), ("initech", "tenants", "delete")]


def test_tenants_list_offers_the_actions_to_those_with_the_right(console: Console, root) -> None:
    page = root.get("/admin/tenants/").get_data(as_text=True)
    assert 'id="create-tenant-link"' in page and f"/admin/tenants/drop/?slug={console.a}" in page
    assert ">Suspend</button>" in page


def test_bad_slugs_are_refused_and_nothing_is_made(console: Console, root) -> None:
    token = csrf_token(root, "/admin/tenants/create/")
    for slug in ("Bad Slug", "pg_catalog", "x", "a" * 41, "acme", "<script>"):
        page = root.post("/admin/tenants/create/", data={"csrf_token": token, "slug": slug, "name": ""})
        assert page.status_code == 200, slug
    assert {t.slug for t in console.tenancy.registry.all()} == {console.a, console.b}
    assert "<script>" not in root.post("/admin/tenants/create/", data={
        "csrf_token": token, "slug": "<script>", "name": ""}).get_data(as_text=True)


def test_only_tenants_change_may_manage_tenants(console: Console, alice) -> None:
    token = csrf_token(alice, "/admin/")
    assert alice.get("/admin/tenants/create/").status_code == 403
    assert alice.post("/admin/tenants/drop/?slug=acme", data={"csrf_token": token, "slug": "acme",
                                                               "confirm": "acme"}).status_code == 403
    assert console.tenancy.registry.find("acme") is not None
    add_staff(console.tenancy.control_engine, "ops@example.com",
              grants=(Grant(None, "tenants", True, False, True, False),))
    ops = signed_in(console.app, "ops@example.com")
    token = csrf_token(ops, "/admin/tenants/")
    assert ops.post("/admin/tenants/status/", data={"csrf_token": token, "slug": console.b, "do": "suspend"}
                    ).status_code == 302
    assert console.tenancy.registry.get(console.b).status == "suspended"
