"""Signing in and out: messages, CSRF, cookies, session renewal, logout, remember me, throttling, next=."""

import pytest
from sqlalchemy import update

from portal import create_app
from portal.auth import FAILED_LOGIN, THROTTLED, safe_next
from portal.config import ProductionConfig
from tenants.core.control_schema import staff
from tests.console_support import PASSWORD, Console, csrf_token, login, signed_in


def _session_cookie(client) -> str:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _is_signed_in(app, cookies: dict[str, str]) -> bool:  # type: ignore[no-untyped-def]
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client.get("/admin/").status_code == 200


def test_failed_sign_in_message_does_not_tell_whether_the_email_exists(console: Console) -> None:
    client = console.app.test_client()
    pages = [login(client, "root@example.com", "wrong password"), login(client, "nobody@example.com", "whatever1"),
             login(client, "root@example.com", "wrong", tenant=console.a)]
    for page in pages:
        assert page.status_code == 200
        assert FAILED_LOGIN in page.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_staff_and_tenant_admin_sign_in(console: Console) -> None:
    staff_client = console.app.test_client()
    assert login(staff_client, "root@example.com").headers["Location"] == "/admin/"
    admin_client = console.app.test_client()
    response = login(admin_client, f"ada@{console.a}.example", tenant=console.a)
    assert response.headers["Location"] == f"/t/{console.a}/admin/"
    # bob has no console-access role: a tenant user, but not a tenant administrator
    assert login(console.app.test_client(), f"bob@{console.a}.example", tenant=console.a).status_code == 200


def test_post_without_csrf_token_is_refused(console: Console, root) -> None:
    assert console.app.test_client().post("/login", data={"email": "root@example.com",
                                                          "password": PASSWORD}).status_code == 400
    before = console.products(console.a)
    assert root.post(f"/t/{console.a}/admin/product/new/", data={"name": "x", "sku": "NEW-1", "price": "1",
                                                                 "stock": "1"}).status_code == 400
    base = f"/t/{console.a}/admin/product"
    assert root.post(f"{base}/action/", data={"action": "delete", "rowid": ["1"]}).status_code == 400
    assert root.post(f"{base}/delete/", data={"id": "1", "csrf_token": "forged"}).status_code == 400
    assert root.post("/logout").status_code == 400
    assert set(console.products(console.a)) == set(before)
    assert root.get("/admin/").status_code == 200  # still signed in: the logout was refused


def test_cookie_flags_in_development(console: Console) -> None:
    client = console.app.test_client()
    response = login(client, "root@example.com", remember=True)
    cookies = response.headers.getlist("Set-Cookie")
    for name in ("session=", "remember_token="):
        header = next(c for c in cookies if c.startswith(name))
        assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header


def test_cookie_flags_in_production_are_secure(settings, tmp_path, console: Console) -> None:  # type: ignore[no-untyped-def]
    app = create_app(ProductionConfig, {
        "DATABASE_URL": settings.control_url, "INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x" * 40,
        "PORTAL_TENANT_DIR": str(settings.tenant_dir)})
    try:
        client = app.test_client()
        client.environ_base["wsgi.url_scheme"] = "https"  # as behind TLS
        response = login(client, "root@example.com", remember=True)
        assert response.status_code == 302
        cookies = response.headers.getlist("Set-Cookie")
        for name in ("session=", "remember_token="):
            header = next(c for c in cookies if c.startswith(name))
            assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header
    finally:
        app.extensions["tenancy"].close()


def test_production_refuses_to_start_without_secret_key(settings, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(ProductionConfig, {"DATABASE_URL": settings.control_url, "INSTANCE_PATH": str(tmp_path)})


def test_session_is_renewed_at_sign_in(console: Console) -> None:
    client = console.app.test_client()
    client.get("/login")
    anonymous = _session_cookie(client)
    login(client, "root@example.com")
    first = _session_cookie(client)
    login(client, "root@example.com")  # signing in again in the same browser
    second = _session_cookie(client)
    assert len({anonymous, first, second}) == 3
    assert not _is_signed_in(console.app, {"session": first})  # the replaced session was ended
    assert _is_signed_in(console.app, {"session": second})


def test_logout_ends_the_session_and_the_remember_cookie(console: Console) -> None:
    client = console.app.test_client()
    login(client, "root@example.com", remember=True)
    session_cookie = _session_cookie(client)
    remember_cookie = client.get_cookie("remember_token").value
    assert _is_signed_in(console.app, {"remember_token": remember_cookie})  # remember me works alone
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/admin/").status_code == 302
    assert not _is_signed_in(console.app, {"session": session_cookie})  # a copied cookie is dead too
    assert not _is_signed_in(console.app, {"remember_token": remember_cookie})


def test_deactivated_staff_is_signed_out(console: Console, alice) -> None:
    with console.tenancy.control_engine.begin() as conn:
        conn.execute(update(staff).where(staff.c.email == "alice@example.com").values(active=False))
    assert alice.get("/admin/").status_code == 302
    assert login(console.app.test_client(), "alice@example.com").status_code == 200


def test_repeated_failures_for_one_account_are_throttled(console: Console) -> None:
    client = console.app.test_client()
    for _ in range(5):
        assert login(client, "alice@example.com", "wrong password").status_code == 200
    refused = login(client, "alice@example.com")  # even the right password, for a while
    assert refused.status_code == 429 and THROTTLED in refused.get_data(as_text=True)
    assert login(client, "root@example.com").status_code == 302  # other accounts are not locked out


def test_repeated_failures_from_one_client_are_throttled(console: Console) -> None:
    console.app.config["PORTAL_LOGIN_CLIENT_LIMIT"] = "3 per 15 minutes"
    client = console.app.test_client()
    for i in range(3):
        assert login(client, f"guess{i}@example.com", "wrong password").status_code == 200
    refused = login(client, "root@example.com")
    assert refused.status_code == 429 and THROTTLED in refused.get_data(as_text=True)


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "/\\evil.example", "\\\\evil.example", "javascript:alert(1)",
    "http:evil.example", " //evil.example", "/\t/evil.example", "https:/evil.example", "evil.example",
])
def test_next_never_leaves_the_site(target: str) -> None:
    assert safe_next(target) is None


def test_next_after_sign_in_stays_inside_the_site(console: Console) -> None:
    client = console.app.test_client()
    assert login(client, "root@example.com", next_url="https://evil.example/x").headers["Location"] == "/admin/"
    client = console.app.test_client()
    assert login(client, "root@example.com", next_url="//evil.example").headers["Location"] == "/admin/"
    inside = f"/t/{console.a}/admin/product/?page_size=50"
    assert login(console.app.test_client(), "root@example.com", next_url=inside).headers["Location"] == inside


def test_signed_in_visitor_at_login_goes_to_the_console(console: Console, root) -> None:
    assert root.get("/login?next=//evil.example").headers["Location"] == "/admin/"


def test_landing_page_leads_to_sign_in(console: Console) -> None:
    client = console.app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert 'href="/admin/"' in page and console.b not in page  # tenant names only after sign-in
    assert client.get("/admin/").headers["Location"] == "/login?next=/admin/"
    assert signed_in(console.app, "root@example.com").get("/admin/").status_code == 200
