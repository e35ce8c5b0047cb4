"""Every signed-in account changes its own password; error pages keep the console's layout."""

import pytest
from sqlalchemy import select

from portal.models import User
from tenants.core.control_schema import audit_log
from tests.console_support import PASSWORD, Console, csrf_token, login, signed_in

URL = "/admin/account/password/"


def _change(client, current: str, new: str, confirm: str | None = None):  # type: ignore[no-untyped-def]
    return client.post(URL, data={"csrf_token": csrf_token(client, URL), "current": current, "new": new,
                                  "confirm": new if confirm is None else confirm})


@pytest.mark.parametrize("who", ["staff", "tenant"])
def test_change_my_password_ends_other_sessions_keeps_this_one(console: Console, who: str) -> None:
    email, tenant = ("alice@example.com", "") if who == "staff" else (f"ada@{console.a}.example", console.a)
    home = "/admin/" if who == "staff" else f"/t/{console.a}/admin/"
    me, other = signed_in(console.app, email, tenant), signed_in(console.app, email, tenant)
    page = me.get(URL)
    assert page.status_code == 200 and 'id="sign-out"' in page.get_data(as_text=True)
    response = _change(me, PASSWORD, "a brand new passphrase")
    assert response.status_code == 302
    assert me.get(home).status_code == 200  # still signed in here
    assert other.get(home).status_code == 302  # signed out everywhere else
    assert login(console.app.test_client(), email, PASSWORD, tenant=tenant).status_code == 200
    assert login(console.app.test_client(), email, "a brand new passphrase", tenant=tenant).status_code == 302
    with console.tenancy.control_engine.connect() as conn:
        entry = conn.execute(select(audit_log).order_by(audit_log.c.id.desc())).first()
    assert entry.action == "change" and "a brand new passphrase" not in (entry.changes or "")
    if who == "tenant":
        with console.session(console.a) as s:
            assert s.scalars(select(User).where(User.email == email)).one().check_password("a brand new passphrase")


@pytest.mark.parametrize("current,new,confirm,message", [
    ("wrong password", "a brand new passphrase", None, "Your current password is not right."),
    (PASSWORD, "short", None, "at least 8"),
    (PASSWORD, "a brand new passphrase", "something else", "do not match"),
])
def test_bad_password_change_is_refused_and_changes_nothing(console: Console, alice, current, new, confirm,
                                                            message) -> None:
    page = _change(alice, current, new, confirm)
    assert page.status_code == 200 and message in page.get_data(as_text=True)
    assert login(console.app.test_client(), "alice@example.com", PASSWORD).status_code == 302


def test_password_page_needs_sign_in(console: Console) -> None:
    assert console.app.test_client().get(URL).status_code == 302


def test_error_pages_are_inside_the_console(console: Console, alice, monkeypatch) -> None:
    missing = alice.get("/admin/no-such-page/")
    assert missing.status_code == 404 and 'id="sign-out"' in missing.get_data(as_text=True)
    forbidden = alice.get(f"/t/{console.b}/admin/product/")
    assert forbidden.status_code == 403 and 'id="sign-out"' in forbidden.get_data(as_text=True)
    assert 'id="error-page"' in forbidden.get_data(as_text=True)
    console.app.config["PROPAGATE_EXCEPTIONS"] = False
    import portal.admin.find as find

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(find, "find_across", broken)
    failed = alice.get("/admin/find/?q=x")
    text = failed.get_data(as_text=True)
    assert failed.status_code == 500 and 'id="error-page"' in text and "secret detail" not in text
    anonymous = console.app.test_client().get("/no-such-page")
    assert anonymous.status_code == 404 and 'id="error-page"' in anonymous.get_data(as_text=True)
