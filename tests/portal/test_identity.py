"""Sessions belong to identities that are never reused: deleted staff, re-created tenants, deactivated users."""

import sqlite3
from contextlib import closing

from sqlalchemy import delete, insert, select

from portal.models import Product, Role, User
from tenants.core.clock import utcnow
from tenants.core.control_schema import new_account_key, staff
from tenants.fleet.create import create_tenant
from tenants.migrate.lifecycle import drop_tenant
from tests.console_support import Console, add_staff, csrf_token, login, password_hash, signed_in


def _with_cookies(app, source):  # type: ignore[no-untyped-def]
    """A fresh client carrying copies of another client's cookies (as an attacker who kept them)."""
    client = app.test_client()
    for name in ("session", "remember_token"):
        cookie = source.get_cookie(name)
        if cookie is not None:
            client.set_cookie(name, cookie.value)
    return client


def _make_tenant_with_admin(console: Console, slug: str, email: str) -> None:
    create_tenant(console.tenancy, slug)
    with console.session(slug) as s:
        s.add(User(email=email, full_name="Admin", password_hash=password_hash(),
                   roles=[Role(name="admin", console_access=True)]))
        s.commit()


def test_deleted_staff_cookie_never_signs_in_as_the_next_account(console: Console, root) -> None:
    engine = console.tenancy.control_engine
    temp_id = add_staff(engine, "temp@example.com")
    temp = console.app.test_client()
    assert login(temp, "temp@example.com", remember=True).status_code == 302
    kept = _with_cookies(console.app, temp)
    token = csrf_token(root, "/admin/staff/")
    assert root.post("/admin/staff/delete/", data={"csrf_token": token, "id": str(temp_id)}).status_code == 302
    # The next account gets the same id (SQLite reuses it; on PostgreSQL we force it to).
    with engine.begin() as conn:
        conn.execute(insert(staff).values(id=temp_id, email="boss@example.com", password_hash=password_hash(),
                                          active=True, is_superuser=True, created_at=utcnow()))
    assert kept.get("/admin/staff/").status_code == 302
    assert kept.get("/admin/").status_code == 302


def test_staff_row_replaced_behind_the_console_ends_its_sessions(console: Console) -> None:
    engine = console.tenancy.control_engine
    temp_id = add_staff(engine, "temp@example.com")
    temp = signed_in(console.app, "temp@example.com")
    # Deleted and re-made with the same id by an operator's SQL shell, where foreign keys are not
    # enforced (sqlite3's default; on PostgreSQL, replication mode skips the cascade too).
    boss = {"id": temp_id, "email": "boss@example.com", "password_hash": password_hash(), "active": True,
            "is_superuser": True, "created_at": utcnow().isoformat(), "account_key": new_account_key()}
    if engine.dialect.name == "sqlite":
        with closing(sqlite3.connect(engine.url.database)) as raw, raw:
            raw.execute("DELETE FROM staff WHERE id = ?", (temp_id,))
            raw.execute("INSERT INTO staff (id, email, full_name, password_hash, active, is_superuser, created_at, "
                        "account_key) VALUES (:id, :email, '', :password_hash, 1, 1, :created_at, :account_key)", boss)
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.execute(delete(staff).where(staff.c.id == temp_id))
            conn.execute(insert(staff).values(**{**boss, "created_at": utcnow()}))
    assert temp.get("/admin/staff/").status_code == 302


def test_dropped_and_recreated_tenant_does_not_honour_old_sessions(console: Console) -> None:
    _make_tenant_with_admin(console, "victim", "old@victim.example")
    old = console.app.test_client()
    assert login(old, "old@victim.example", tenant="victim", remember=True).status_code == 302
    assert old.get("/t/victim/admin/").status_code == 200
    kept = _with_cookies(console.app, old)
    drop_tenant(console.tenancy, "victim")
    _make_tenant_with_admin(console, "victim", "new@victim.example")  # the new customer's user 1
    assert kept.get("/t/victim/admin/").status_code == 302
    assert kept.get("/t/victim/admin/user/").status_code == 302
    assert old.get("/t/victim/admin/product/").status_code == 302


def test_recreated_tenant_does_not_see_the_old_tenants_history(console: Console, root) -> None:
    _make_tenant_with_admin(console, "victim", "old@victim.example")
    token = csrf_token(root, "/t/victim/admin/product/")
    assert root.post("/t/victim/admin/product/new/", data={
        "csrf_token": token, "name": "Secret formula", "sku": "OLD-1", "price": "1", "stock": "1"}).status_code == 302
    assert "Secret formula" in root.get("/admin/history/").get_data(as_text=True)
    drop_tenant(console.tenancy, "victim")
    _make_tenant_with_admin(console, "victim", "new@victim.example")
    new_admin = signed_in(console.app, "new@victim.example", tenant="victim")
    page = new_admin.get("/admin/history/").get_data(as_text=True)
    assert "Secret formula" not in page
    with console.session("victim") as s:
        s.add(Product(name="Fresh", sku="NEW-1"))
        s.commit()
        product_id = s.scalars(select(Product.id)).one()
    details = new_admin.get(f"/t/victim/admin/product/edit/?id={product_id}").get_data(as_text=True)
    assert "Secret formula" not in details


def _ada_id(console: Console) -> int:
    with console.session(console.a) as s:
        return s.scalars(select(User.id).where(User.email == f"ada@{console.a}.example")).one()


def _set_ada_active(console: Console, root, active: bool, how: str) -> None:  # type: ignore[no-untyped-def]
    base = f"/t/{console.a}/admin/user"
    token = csrf_token(root, f"{base}/")
    ada = _ada_id(console)
    if how == "form":
        data = {"csrf_token": token, "email": f"ada@{console.a}.example", "full_name": "Ada", "roles": "1"}
        if active:
            data["active"] = "y"
        response = root.post(f"{base}/edit/?id={ada}", data=data)
    else:
        response = root.post(f"{base}/action/", data={"csrf_token": token, "rowid": [str(ada)],
                                                      "action": "activate" if active else "deactivate"})
    assert response.status_code == 302


def test_deactivating_a_tenant_user_ends_their_sessions_for_good(console: Console, root) -> None:
    for how in ("form", "action"):
        ada = console.app.test_client()
        assert login(ada, f"ada@{console.a}.example", tenant=console.a, remember=True).status_code == 302
        kept = _with_cookies(console.app, ada)
        _set_ada_active(console, root, False, how)
        _set_ada_active(console, root, True, how)
        assert ada.get(f"/t/{console.a}/admin/").status_code == 302, how
        assert kept.get(f"/t/{console.a}/admin/").status_code == 302, how
        assert signed_in(console.app, f"ada@{console.a}.example", tenant=console.a).get(
            f"/t/{console.a}/admin/").status_code == 200  # signing in again works


def test_deleted_tenant_user_session_does_not_pass_to_the_next_user(console: Console, root) -> None:
    with console.session(console.a) as s:
        admin = s.scalars(select(Role).where(Role.name == "admin")).one()
        temp = User(email=f"temp@{console.a}.example", password_hash=password_hash(), roles=[admin])
        s.add(temp)
        s.commit()
        temp_id = temp.id
    client = signed_in(console.app, f"temp@{console.a}.example", tenant=console.a)
    token = csrf_token(root, f"/t/{console.a}/admin/user/")
    assert root.post(f"/t/{console.a}/admin/user/delete/", data={"csrf_token": token, "id": str(temp_id)}
                     ).status_code == 302
    with console.session(console.a) as s:  # the next user gets the same id (SQLite; forced on PostgreSQL)
        admin = s.scalars(select(Role).where(Role.name == "admin")).one()
        s.add(User(id=temp_id, email=f"next@{console.a}.example", password_hash=password_hash(), roles=[admin]))
        s.commit()
    assert client.get(f"/t/{console.a}/admin/").status_code == 302
