"""Tenant isolation: every console endpoint acts on the tenant of its URL, and only with a grant for it."""

import pytest

from tests.console_support import Console, csrf_token, signed_in

MODELS = ["user", "role", "product"]


def endpoints(slug: str, model: str, token: str) -> list[tuple[str, str, dict]]:
    """Every Flask-Admin endpoint of one tenant view, with the data a real form would send."""
    base = f"/t/{slug}/admin/{model}"
    return [
        ("GET", f"{base}/", {}),
        ("GET", f"{base}/new/", {}),
        ("POST", f"{base}/new/", {"csrf_token": token, "name": "x", "email": "x@y.example", "sku": "X-1"}),
        ("GET", f"{base}/edit/?id=1", {}),
        ("POST", f"{base}/edit/?id=1", {"csrf_token": token, "name": "hacked", "full_name": "hacked"}),
        ("GET", f"{base}/details/?id=1", {}),
        ("POST", f"{base}/delete/", {"csrf_token": token, "id": "1"}),
        ("POST", f"{base}/action/", {"csrf_token": token, "action": "delete", "rowid": ["1", "2"]}),
        ("GET", f"{base}/ajax/lookup/?name=roles&query=a", {}),
        ("POST", f"{base}/ajax/update/", {"csrf_token": token, "list_form_pk": "1", "stock": "99"}),
        ("GET", f"{base}/export/csv/", {}),
    ]


def _call(client, method: str, url: str, data: dict):  # type: ignore[no-untyped-def]
    return client.get(url) if method == "GET" else client.post(url, data=data)


@pytest.mark.parametrize("who", ["alice", "acme_admin"])
def test_every_endpoint_of_another_tenant_is_403(console: Console, who: str, request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue(who)
    token = csrf_token(client, f"/t/{console.a}/admin/product/")
    before = console.products(console.b)
    assert client.get(f"/t/{console.b}/admin/").status_code == 403
    for model in MODELS:
        for method, url, data in endpoints(console.b, model, token):
            assert _call(client, method, url, data).status_code == 403, f"{who} {method} {url}"
    after = console.products(console.b)
    assert {i: (p.name, p.stock) for i, p in after.items()} == {i: (p.name, p.stock) for i, p in before.items()}


def test_unknown_tenant_is_403_for_staff_and_404_for_superusers(console: Console, alice, root) -> None:
    assert alice.get("/t/nosuch/admin/product/").status_code == 403
    assert alice.get("/t/Bad-Slug!/admin/product/").status_code == 403
    assert root.get("/t/nosuch/admin/product/").status_code == 404


def test_anonymous_tenant_urls_go_to_sign_in(console: Console) -> None:
    response = console.app.test_client().get(f"/t/{console.a}/admin/product/?page_size=20")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_ids_of_b_posted_under_a_never_touch_b(console: Console, alice) -> None:
    a, b = console.a, console.b
    token = csrf_token(alice, f"/t/{a}/admin/product/")
    b_before = {i: (p.name, p.stock, p.active) for i, p in console.products(b).items()}
    assert set(b_before) - set(console.products(a)) == {3, 4}  # ids only globex has

    alice.post(f"/t/{a}/admin/product/delete/", data={"csrf_token": token, "id": "4"})
    alice.post(f"/t/{a}/admin/product/action/", data={"csrf_token": token, "action": "delete", "rowid": ["3", "4"]})
    alice.post(f"/t/{a}/admin/product/action/",
               data={"csrf_token": token, "action": "deactivate", "rowid": ["1", "2", "3", "4"]})
    alice.post(f"/t/{a}/admin/product/edit/?id=4",
               data={"csrf_token": token, "name": "hacked", "sku": "GLX-4", "price": "1", "stock": "1"})
    alice.post(f"/t/{a}/admin/product/ajax/update/", data={"csrf_token": token, "list_form_pk": "3", "stock": "99"})

    assert {i: (p.name, p.stock, p.active) for i, p in console.products(b).items()} == b_before
    acme = console.products(a)
    assert set(acme) == {1, 2} and not any(p.active for p in acme.values())  # A's own rows 1, 2 were acted on
    export = alice.get(f"/t/{a}/admin/product/export/csv/").get_data(as_text=True)
    assert "ACM-1" in export and "GLX" not in export


def test_two_tabs_on_two_tenants_never_mix(console: Console, root) -> None:
    for _ in range(2):  # alternate like two browser tabs of one session
        page_a = root.get(f"/t/{console.a}/admin/product/").get_data(as_text=True)
        page_b = root.get(f"/t/{console.b}/admin/product/").get_data(as_text=True)
        assert "Anvil" in page_a and "Globex thing" not in page_a
        assert "Globex thing" in page_b and "Anvil" not in page_b
        # Links Flask-Admin builds (menu, create, export, rows) stay on the page's tenant.
        assert f'href="/t/{console.a}/admin/user/"' not in page_b
        assert f"/t/{console.b}/admin/product/export/csv/" in page_b
        # The switcher is a search form, not a list of links to other tenants.
        assert f"/t/{console.a}/" not in page_b


def test_ajax_lookup_reads_the_url_tenant_only(console: Console, root) -> None:
    with console.session(console.b) as s:
        from portal.models import Role

        s.add(Role(name="globex-only", description=""))
        s.commit()
    found_a = root.get(f"/t/{console.a}/admin/user/ajax/lookup/?name=roles&query=glo").get_json()
    found_b = root.get(f"/t/{console.b}/admin/user/ajax/lookup/?name=roles&query=glo").get_json()
    assert found_a == [] and [name for _, name in found_b] == ["globex-only"]


def test_tenant_admin_cannot_reach_control_views(console: Console, acme_admin) -> None:
    for url in ["/admin/tenants/", "/admin/runs/", "/admin/results/", "/admin/staff/"]:
        assert acme_admin.get(url).status_code == 403, url
    assert acme_admin.get(f"/t/{console.a}/admin/product/").status_code == 200
    switcher = acme_admin.get("/admin/").get_data(as_text=True)
    assert f"/t/{console.b}/admin/" not in switcher


def test_tenant_admin_cannot_sign_in_to_another_tenant(console: Console) -> None:
    from tests.console_support import login

    response = login(console.app.test_client(), f"ada@{console.a}.example", tenant=console.b)
    assert response.status_code == 200 and "Invalid email or password." in response.get_data(as_text=True)


def test_losing_the_console_role_ends_tenant_admin_access(console: Console) -> None:
    client = signed_in(console.app, f"ada@{console.a}.example", tenant=console.a)
    with console.session(console.a) as s:
        from portal.models import Role

        s.query(Role).filter_by(name="admin").one().console_access = False
        s.commit()
    assert client.get(f"/t/{console.a}/admin/product/").status_code == 302  # back to sign-in


def test_suspended_tenant_is_refused(console: Console, root) -> None:
    console.tenancy.registry.set_status(console.b, "suspended", "unpaid")
    assert root.get(f"/t/{console.b}/admin/product/").status_code == 403
