"""Create, suspend, resume and drop a tenant from the Tenants view: same library calls as the CLI, in History."""

from sqlalchemy import select

from portal.permissions import Grant
from tenants.core.control_schema import audit_log
from tests.console_support import Console, add_staff, csrf_token, register_tenants, signed_in


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


def test_a_recreated_tenant_shows_none_of_the_old_tenants_last_result(console: Console, root) -> None:
    from tenants.core.ledger import TenantResult, finish_run, record_result, start_run
    from tenants.fleet.create import create_tenant
    from tenants.migrate.lifecycle import drop_tenant

    engine = console.tenancy.control_engine
    create_tenant(console.tenancy, "initech")
    run_id = start_run(engine, "upgrade", "0003", "test", {}, total=1)
    record_result(engine, run_id, TenantResult("initech", "failed", "0002", "0002", 1.0, "boom in 0003"))
    finish_run(engine, run_id, "failed", {"failed": 1})
    assert "boom in 0003" in root.get("/admin/tenants/").get_data(as_text=True)
    drop_tenant(console.tenancy, "initech")
    # Registered again with no result of its own yet (create-tenant would record one that hides the old)
    register_tenants(engine, ["initech"])
    listed = root.get("/admin/tenants/").get_data(as_text=True)
    assert "initech" in listed and "boom in 0003" not in listed


def test_dropping_a_tenant_in_use_says_so_and_keeps_it(console: Console, root) -> None:
    # A migration or task holds the tenant's lock: the console's drop goes the CLI's way, refused.
    token = csrf_token(root, "/admin/tenants/")
    with console.tenancy.storage(console.b).begin(exclusive=True):
        refused = root.post(f"/admin/tenants/drop/?slug={console.b}", data={
            "csrf_token": token, "slug": console.b, "confirm": console.b}, follow_redirects=True)
    assert refused.status_code == 200
    assert f"Could not drop {console.b}: tenant &#39;{console.b}&#39; is locked by another process" in (
        refused.get_data(as_text=True))
    tenant = console.tenancy.registry.get(console.b)
    assert tenant.status == "active" and console.tenancy.storage(tenant).exists()
    assert "delete" not in {action for _, _, action in _history(console)}
