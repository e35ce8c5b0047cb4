"""A tenant behind or ahead of head: a clear page naming both revisions, read-only where possible, never a 500."""

from sqlalchemy import update

from tenants.core.control_schema import tenant_versions
from tenants.fleet.options import RunOptions
from tenants.fleet.single import move_tenant
from tests.console_support import Console, csrf_token, login, signed_in


def _behind(console: Console) -> str:
    move_tenant(console.tenancy, console.b, "0002", downgrade=True, options=RunOptions(allow_destructive=True))
    return console.b


def test_tenant_behind_head_is_quarantined_not_a_500(console: Console, root, alice) -> None:
    slug = _behind(console)
    head = console.tenancy.head()
    for url in (f"/t/{slug}/admin/role/", f"/t/{slug}/admin/user/", f"/t/{slug}/admin/role/new/",
                f"/t/{slug}/admin/user/edit/?id=1", f"/t/{slug}/admin/"):
        page = root.get(url)
        text = page.get_data(as_text=True)
        assert page.status_code in (200, 503), (url, page.status_code)
        assert 'id="tenant-quarantine"' in text and "0002" in text and head in text, url
        assert "Upgrade to head" in text, url
    # What the schema allows is still readable: products exist at 0002.
    products = root.get(f"/t/{slug}/admin/product/")
    assert products.status_code == 200 and "Globex thing 1" in products.get_data(as_text=True)
    assert f"/t/{slug}/admin/product/new/" not in products.get_data(as_text=True)  # read-only
    token = csrf_token(root, "/admin/")
    refused = root.post(f"/t/{slug}/admin/product/new/", data={
        "csrf_token": token, "name": "X", "sku": "X-1", "price": "1", "stock": "1"})
    assert refused.status_code == 503 and 'id="tenant-quarantine"' in refused.get_data(as_text=True)
    assert "X-1" not in {p.sku for p in console.products(slug).values()}


def test_upgrade_button_is_for_those_with_the_right(console: Console, root) -> None:
    slug = _behind(console)
    support = signed_in_with_grants(console)
    page = support.get(f"/t/{slug}/admin/role/").get_data(as_text=True)
    assert 'id="tenant-quarantine"' in page and "Upgrade to head" not in page
    token = csrf_token(support, "/admin/")
    assert support.post("/admin/tenants/upgrade/", data={"csrf_token": token, "slug": slug}).status_code == 403
    token = csrf_token(root, "/admin/")
    response = root.post("/admin/tenants/upgrade/", data={"csrf_token": token, "slug": slug})
    assert response.status_code == 302 and response.headers["Location"] == f"/t/{slug}/admin/"
    roles = root.get(f"/t/{slug}/admin/role/")
    assert roles.status_code == 200 and 'id="tenant-quarantine"' not in roles.get_data(as_text=True)


def signed_in_with_grants(console: Console):  # type: ignore[no-untyped-def]
    from portal.permissions import Grant
    from tests.console_support import add_staff

    add_staff(console.tenancy.control_engine, "support@example.com",
              grants=(Grant(console.b, "roles", True, True, True, True),))
    return signed_in(console.app, "support@example.com")


def test_tenant_ahead_of_head_is_quarantined(console: Console, root) -> None:
    with console.tenancy.control_engine.begin() as conn:
        conn.execute(update(tenant_versions).where(tenant_versions.c.tenant_slug == console.b)
                     .values(revision="0999"))
    page = root.get(f"/t/{console.b}/admin/role/new/")
    text = page.get_data(as_text=True)
    assert page.status_code == 503 and "0999" in text and console.tenancy.head() in text


def test_tenant_admin_of_a_tenant_behind_head_gets_no_500(console: Console) -> None:
    admin = signed_in(console.app, f"ada@{console.b}.example", tenant=console.b)
    slug = _behind(console)
    assert admin.get(f"/t/{slug}/admin/role/").status_code in (200, 302, 503)
    fresh = console.app.test_client()
    assert login(fresh, f"ada@{slug}.example", tenant=slug).status_code in (200, 302)


def test_unmerged_heads_in_the_code_give_the_quarantine_page_not_a_500(settings, tmp_path, monkeypatch) -> None:
    from tenants.core.tenancy import Tenancy
    from tenants.fleet.create import create_tenant
    from tenants.migrate.control import ensure_control
    from tests.chains import chain_with
    from tests.conftest import close_app, make_app
    from tests.console_support import add_staff
    from tests.migrate.test_heads import TWO_HEADS

    current = Tenancy(settings)
    ensure_control(current)
    create_tenant(current, "acme")
    add_staff(current.control_engine, "root@example.com", superuser=True)
    current.close()
    monkeypatch.setenv("PORTAL_REVISION_DIR", str(chain_with(tmp_path, TWO_HEADS)))
    app = make_app(settings.control_url, tmp_path, settings.tenant_dir)
    try:
        client = app.test_client()
        assert login(client, "root@example.com").status_code == 302
        for url in ("/admin/", "/admin/tenants/", "/t/acme/admin/", "/t/acme/admin/role/"):
            page = client.get(url)
            assert page.status_code in (200, 503), (url, page.status_code)
        page = client.get("/t/acme/admin/role/new/")
        assert page.status_code == 503 and "0004a, 0004b" in page.get_data(as_text=True)
    finally:
        close_app(app)
