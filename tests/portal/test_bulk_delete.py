"""Bulk delete lists what will be affected, as Django admin does, before anything is deleted."""

from sqlalchemy import select

from portal.models import Role, User
from tests.console_support import Console, csrf_token


def test_bulk_delete_of_roles_lists_the_roles_and_their_users(console: Console, root) -> None:
    with console.session(console.a) as s:
        ids = [str(i) for i in s.scalars(select(Role.id).order_by(Role.id))]
    token = csrf_token(root, f"/t/{console.a}/admin/role/")
    page = root.post(f"/t/{console.a}/admin/role/action/", data={"csrf_token": token, "action": "delete",
                                                                 "rowid": ids}).get_data(as_text=True)
    listing = page[page.index('id="bulk-delete"'):]
    assert "admin" in listing and "staff" in listing  # the roles
    assert f"ada@{console.a}.example" in listing and f"bob@{console.a}.example" in listing  # who loses them
    with console.session(console.a) as s:
        assert len(s.scalars(select(Role)).all()) == 2 and len(s.scalars(select(User)).all()) == 2


def test_bulk_delete_listing_hides_users_without_a_users_grant(console: Console) -> None:
    from portal.permissions import Grant
    from tests.console_support import add_staff, signed_in

    add_staff(console.tenancy.control_engine, "roles@example.com",
              grants=(Grant(console.a, "roles", True, True, True, True),))
    client = signed_in(console.app, "roles@example.com")
    token = csrf_token(client, f"/t/{console.a}/admin/role/")
    page = client.post(f"/t/{console.a}/admin/role/action/", data={"csrf_token": token, "action": "delete",
                                                                   "rowid": ["1"]}).get_data(as_text=True)
    assert 'id="bulk-delete"' in page and f"ada@{console.a}.example" not in page and "1 user" in page


def test_bulk_delete_listing_stays_in_the_tenant(console: Console, root) -> None:
    token = csrf_token(root, f"/t/{console.a}/admin/product/")
    page = root.post(f"/t/{console.a}/admin/product/action/", data={"csrf_token": token, "action": "delete",
                                                                    "rowid": ["1", "2", "3", "4"]})
    text = page.get_data(as_text=True)
    assert "Anvil" in text and "Globex thing" not in text  # ids 3 and 4 exist only in globex
