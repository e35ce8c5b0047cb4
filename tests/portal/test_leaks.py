"""What a grant does not cover stays hidden, and hostile paging or a broken tenant never gives a 500."""

import pytest

from portal.permissions import Grant
from tests.console_support import Console, add_staff, signed_in


def test_dashboard_shows_only_the_counts_a_grant_covers(console: Console, viewer) -> None:
    console.refresh_stats()
    page = viewer.get("/admin/").get_data(as_text=True)
    row = page[page.index(f"<tr data-tenant=\"{console.a}\""):]
    row = row[:row.index("</tr>")]
    assert 'data-count="products">2<' in row
    assert 'data-count="users"' not in row and 'data-count="roles"' not in row


def test_role_details_hide_users_without_a_users_grant(console: Console) -> None:
    add_staff(console.tenancy.control_engine, "roles@example.com", grants=(Grant(console.a, "roles"),))
    client = signed_in(console.app, "roles@example.com")
    page = client.get(f"/t/{console.a}/admin/role/details/?id=1").get_data(as_text=True)
    assert "admin" in page and f"ada@{console.a}.example" not in page
    root = signed_in(console.app, "root@example.com")
    assert f"ada@{console.a}.example" in root.get(f"/t/{console.a}/admin/role/details/?id=1").get_data(as_text=True)


@pytest.mark.parametrize("query", ["page=-1", "page=99999999999999999999", "page=9999999999", "page_size=-5",
                                   "page=-1&page_size=100"])
def test_hostile_paging_is_clamped_or_refused(console: Console, root, query: str) -> None:
    for url in (f"/t/{console.a}/admin/product/?{query}", f"/admin/history/?{query}", f"/admin/tenants/?{query}"):
        assert root.get(url).status_code in (200, 400), url


@pytest.mark.parametrize("query", ["offset=-1", "offset=99999999999999999999", "limit=-1", "offset=-1&limit=-1"])
def test_hostile_ajax_lookup_is_refused(console: Console, root, query: str) -> None:
    response = root.get(f"/t/{console.a}/admin/user/ajax/lookup/?name=roles&query=a&{query}")
    assert response.status_code in (200, 400)


def test_one_unreadable_tenant_does_not_break_find(console: Console, root) -> None:
    storage = console.tenancy.storage(console.b)
    from sqlalchemy import text

    with storage.begin() as conn:
        conn.execute(text("DROP TABLE products"))
    page = root.get("/admin/find/?kind=product&q=a")
    text_ = page.get_data(as_text=True)
    assert page.status_code == 200 and "Anvil" in text_
    assert 'id="find-unreadable"' in text_ and console.b in text_
