"""The tenant switcher: a bounded search over the tenants one may enter, and a plain GET that switches."""

import pytest

from portal.permissions import Grant
from portal.tenant_scope import SEARCH_LIMIT
from tests.console_support import Console, add_staff, register_tenants, signed_in


def search(client, query: str, **extra: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    response = client.get("/admin/switch/search/", query_string={"query": query, **extra})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()


def test_search_offers_the_tenants_one_may_enter(console: Console, root, alice, viewer, acme_admin) -> None:
    assert search(root, "") == [[console.a, f"Acme ({console.a})"], [console.b, f"Globex ({console.b})"]]
    assert search(root, "GLOB") == [[console.b, f"Globex ({console.b})"]]  # slug or name, any case
    for limited in (alice, viewer, acme_admin):
        assert search(limited, "") == [[console.a, f"Acme ({console.a})"]]
        for typed in (console.b, "glo", "Globex", "e"):  # B's slug typed out never offers B
            assert console.b not in str(search(limited, typed)), typed


def test_a_staff_member_limited_to_b_never_sees_a(console: Console) -> None:
    add_staff(console.tenancy.control_engine, "bonly@example.com", grants=(Grant(console.b, "roles"),))
    client = signed_in(console.app, "bonly@example.com")
    assert search(client, "") == [[console.b, f"Globex ({console.b})"]]
    assert search(client, console.a) == []
    refused = client.get(f"/admin/switch/?tenant={console.a}")
    assert refused.status_code == 404 and f"/t/{console.a}/" not in refused.get_data(as_text=True)
    assert client.get(f"/admin/switch/?q={console.a}").status_code == 404


def test_switching_is_a_plain_get(console: Console, root) -> None:
    assert root.get(f"/admin/switch/?q={console.b}").headers["Location"] == f"/t/{console.b}/admin/"
    assert root.get("/admin/switch/?q=glob").headers["Location"] == f"/t/{console.b}/admin/"  # the one match
    listed = root.get("/admin/switch/?q=")  # several matches: a list of links, each a switch
    page = listed.get_data(as_text=True)
    assert listed.status_code == 200 and f'data-tenant="{console.a}"' in page and f'data-tenant="{console.b}"' in page
    assert root.get(f"/admin/switch/?tenant={console.a}").headers["Location"] == f"/t/{console.a}/admin/"


def test_anonymous_visitors_get_the_sign_in_page(console: Console) -> None:
    client = console.app.test_client()
    for url in ("/admin/switch/search/?query=a", f"/admin/switch/?tenant={console.a}"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_only_active_tenants_are_offered(console: Console, root) -> None:
    register_tenants(console.tenancy.control_engine, ["asleep"], status="suspended")
    assert search(root, "asleep") == []
    assert root.get("/admin/switch/?tenant=asleep").status_code == 404


HOSTILE = ["'", '"', "' OR '1'='1", "%", "_", "%%", "\\", "<script>alert(1)</script>", "x" * 5000,
           "acme'; DROP TABLE tenants; --", "\x00", "é🙂"]


@pytest.mark.parametrize("typed", HOSTILE)
def test_hostile_search_text_is_only_text(console: Console, root, typed: str) -> None:
    register_tenants(console.tenancy.control_engine, ["percent", "under_score", "scripted"])
    with console.tenancy.control_engine.begin() as conn:
        from sqlalchemy import update

        from tenants.core.control_schema import tenants

        conn.execute(update(tenants).where(tenants.c.slug == "percent").values(display_name="100% \"sure\" 'yes'"))
        conn.execute(update(tenants).where(tenants.c.slug == "scripted")
                     .values(display_name="<script>alert(1)</script>"))
    found = [slug for slug, _ in search(root, typed)]
    expected = {"%": ["percent"], "_": ["under_score"], "'": ["percent"], '"': ["percent"],
                "<script>alert(1)</script>": ["scripted"],
                "\x00": sorted(["acme", "globex", "percent", "under_score", "scripted"])}  # nothing typed: all
    assert found == expected.get(typed, []), typed
    # `tenant` (not `q`) never picks the one match: the page lists it, and shows the typed text back.
    page = root.get("/admin/switch/", query_string={"tenant": typed, "model": typed})
    assert page.status_code in (200, 404)
    assert "<script>alert(1)</script>" not in page.get_data(as_text=True)
    if typed == "<script>alert(1)</script>":
        assert page.get_data(as_text=True).count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3  # field, model, name
    assert console.tenancy.registry.find(console.a) is not None  # nothing was dropped


def test_results_are_bounded(console: Console, root) -> None:
    register_tenants(console.tenancy.control_engine, [f"bulk_{i:03d}" for i in range(60)])
    assert len(search(root, "bulk", limit="100000")) == SEARCH_LIMIT
    assert len(search(root, "bulk")) == 10
    second = search(root, "bulk", offset="10", limit="10")
    assert [slug for slug, _ in second] == [f"bulk_{i:03d}" for i in range(10, 20)]
    for offset, limit in (("-1", "10"), ("abc", "x"), ("99999999999999999999", "-5"), ("1e3", "")):
        assert len(search(root, "bulk", offset=offset, limit=limit)) <= SEARCH_LIMIT
    page = root.get("/admin/switch/?q=bulk").get_data(as_text=True)
    assert page.count('data-tenant="bulk_') == SEARCH_LIMIT and "type more" in page


def test_every_console_page_has_the_switcher_not_a_list(console: Console, root) -> None:
    register_tenants(console.tenancy.control_engine, [f"bulk_{i:03d}" for i in range(30)])
    page = root.get(f"/t/{console.a}/admin/product/").get_data(as_text=True)
    assert 'id="tenant-switch-form"' in page and "/static/console/switcher.js" in page
    assert "bulk_0" not in page  # no tenant is listed in the page itself
