"""The console pages: tenant CRUD with inline errors, rights, export, escaping, dashboard, control views, find."""

import csv
import io
import json

import pytest
from sqlalchemy import select

from portal.models import Product, User
from portal.permissions import Grant
from tenants.core.control_schema import audit_log, staff
from tenants.fleet.options import RunOptions
from tenants.fleet.single import move_tenant
from tests.console_support import Console, add_staff, csrf_token, login, register_tenants, signed_in

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _post_product(client, slug: str, **fields: str):  # type: ignore[no-untyped-def]
    data = {"name": "Widget", "sku": "WID-1", "price": "5.00", "stock": "3", "active": "y", **fields}
    data["csrf_token"] = csrf_token(client, f"/t/{slug}/admin/product/")
    return client.post(f"/t/{slug}/admin/product/new/", data=data)


def _audit(console: Console) -> list[dict]:
    with console.tenancy.control_engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]


def test_create_product_lands_in_the_url_tenant_only(console: Console, root) -> None:
    assert _post_product(root, console.a, name="Made in A", sku="MIA-1").status_code == 302
    assert "Made in A" in root.get(f"/t/{console.a}/admin/product/").get_data(as_text=True)
    assert "Made in A" not in root.get(f"/t/{console.b}/admin/product/").get_data(as_text=True)
    assert [p.sku for p in console.products(console.b).values() if p.sku == "MIA-1"] == []
    entry = _audit(console)[-1]
    assert (entry["tenant_slug"], entry["model"], entry["action"], entry["actor"]) == (
        console.a, "products", "add", "root@example.com")


def test_validation_errors_are_shown_inline_not_500(console: Console, root) -> None:
    count = len(console.products(console.a))
    for fields, message in [({"sku": "ACM-1"}, "Already exists."),
                            ({"price": "-1"}, "The price cannot be negative."),
                            ({"stock": "-5"}, "The stock cannot be negative.")]:
        page = _post_product(root, console.a, **fields)
        assert page.status_code == 200 and message in page.get_data(as_text=True), fields
    assert len(console.products(console.a)) == count
    token = csrf_token(root, f"/t/{console.a}/admin/user/")
    page = root.post(f"/t/{console.a}/admin/user/new/", data={
        "csrf_token": token, "email": f"ada@{console.a}.example", "full_name": "Dup", "active": "y"})
    assert page.status_code == 200 and "Already exists." in page.get_data(as_text=True)


def test_user_password_is_write_only_and_never_recorded(console: Console, root) -> None:
    token = csrf_token(root, f"/t/{console.a}/admin/user/")
    response = root.post(f"/t/{console.a}/admin/user/new/", data={
        "csrf_token": token, "email": "new@acme.example", "full_name": "New", "active": "y",
        "roles": "1", "password": "a secret password"})
    assert response.status_code == 302
    with console.session(console.a) as s:
        user = s.scalars(select(User).where(User.email == "new@acme.example")).one()
        stored, user_id = user.password_hash, user.id
        assert user.check_password("a secret password") and [r.name for r in user.roles] == ["admin"]
    base = f"/t/{console.a}/admin/user"
    urls = [f"{base}/", f"{base}/details/?id={user_id}", f"{base}/edit/?id={user_id}", f"{base}/export/csv/",
            "/admin/history/"]
    pages = [root.get(url).get_data(as_text=True) for url in urls]
    for page in pages:
        assert stored not in page and "scrypt:" not in page and "a secret password" not in page
    # Saving without a password keeps it; with one, it changes and History only says so.
    root.post(f"{base}/edit/?id={user_id}", data={"csrf_token": token, "email": "new@acme.example",
                                                   "full_name": "Renamed", "active": "y", "roles": "1"})
    root.post(f"{base}/edit/?id={user_id}", data={"csrf_token": token, "email": "new@acme.example",
                                                   "full_name": "Renamed", "active": "y", "roles": "1",
                                                   "password": "another secret"})
    with console.session(console.a) as s:
        assert s.get(User, user_id).check_password("another secret")
    changes = [json.loads(e["changes"]) for e in _audit(console) if e["model"] == "users" and e["action"] == "change"]
    assert changes[0] == {"full_name": ["New", "Renamed"]}
    assert changes[1] == {"password": ["(changed)", "(changed)"]}
    raw = json.dumps(_audit(console), default=str)
    assert "scrypt" not in raw and "secret" not in raw


def test_bulk_activate_and_deactivate(console: Console, root) -> None:
    token = csrf_token(root, f"/t/{console.a}/admin/product/")
    root.post(f"/t/{console.a}/admin/product/action/", data={"csrf_token": token, "action": "deactivate",
                                                            "rowid": ["1", "2"]})
    assert not any(p.active for p in console.products(console.a).values())
    root.post(f"/t/{console.a}/admin/product/action/", data={"csrf_token": token, "action": "activate",
                                                            "rowid": ["2"]})
    assert {i: p.active for i, p in console.products(console.a).items()} == {1: False, 2: True}
    assert [json.loads(e["changes"]) for e in _audit(console)][-1] == {"active": [False, True]}


def test_delete_action_asks_for_confirmation_and_is_audited(console: Console, root) -> None:
    token = csrf_token(root, f"/t/{console.a}/admin/product/")
    asked = root.post(f"/t/{console.a}/admin/product/action/", data={"csrf_token": token, "action": "delete",
                                                                     "rowid": ["1"]})
    assert asked.status_code == 200 and 'id="bulk-delete"' in asked.get_data(as_text=True)
    assert set(console.products(console.a)) == {1, 2}  # nothing deleted before the confirmation
    root.post(f"/t/{console.a}/admin/product/action/", data={"csrf_token": token, "action": "delete",
                                                             "rowid": ["1"], "confirmed": "1"})
    assert set(console.products(console.a)) == {2}
    assert _audit(console)[-1]["action"] == "delete" and "Anvil" in _audit(console)[-1]["object_label"]


def test_view_only_grant_can_look_but_not_touch(console: Console, viewer) -> None:
    base = f"/t/{console.a}/admin/product"
    token = csrf_token(viewer, f"{base}/")
    assert viewer.get(f"{base}/details/?id=1").status_code == 200
    assert viewer.get(f"{base}/export/csv/").status_code == 200
    assert viewer.get(f"{base}/new/").status_code == 403
    assert viewer.get(f"{base}/edit/?id=1").status_code == 403
    assert viewer.post(f"{base}/delete/", data={"csrf_token": token, "id": "1"}).status_code == 403
    assert viewer.post(f"{base}/action/", data={"csrf_token": token, "action": "deactivate",
                                                "rowid": ["1"]}).status_code == 403
    assert viewer.post(f"{base}/ajax/update/", data={"csrf_token": token, "list_form_pk": "1",
                                                     "stock": "0"}).status_code == 403
    assert viewer.get(f"/t/{console.a}/admin/user/").status_code == 403  # no grant on users
    assert all(p.active and p.stock > 0 for p in console.products(console.a).values())


def test_csv_export_neutralises_formulas_and_keeps_text(console: Console, root) -> None:
    for i, name in enumerate(["=HYPERLINK(\"http://evil\")", "+1+1", "-2", "@SUM(A1)", SCRIPT]):
        console.add_product(console.a, name, f"CSV-{i}")
    response = root.get(f"/t/{console.a}/admin/product/export/csv/")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    names = {row["Sku"]: row["Name"] for row in rows}
    assert names["CSV-0"] == "'=HYPERLINK(\"http://evil\")"
    assert (names["CSV-1"], names["CSV-2"], names["CSV-3"]) == ("'+1+1", "'-2", "'@SUM(A1)")
    assert names["CSV-4"] == SCRIPT and names["ACM-1"] == "Anvil"  # plain text, as typed
    assert "Price" in rows[0] and "Password Hash" not in rows[0]


def test_script_in_a_name_shows_as_text_everywhere(console: Console, root) -> None:
    assert _post_product(root, console.a, name=SCRIPT, sku="XSS-1").status_code == 302
    product_id = next(i for i, p in console.products(console.a).items() if p.sku == "XSS-1")
    token = csrf_token(root, f"/t/{console.a}/admin/product/")
    root.post(f"/t/{console.a}/admin/product/edit/?id={product_id}", data={
        "csrf_token": token, "name": SCRIPT + "2", "sku": "XSS-1", "price": "1", "stock": "1"})
    pages = {
        "list": root.get(f"/t/{console.a}/admin/product/"),
        "details": root.get(f"/t/{console.a}/admin/product/details/?id={product_id}"),
        "edit": root.get(f"/t/{console.a}/admin/product/edit/?id={product_id}"),
        "history": root.get("/admin/history/"),
        "find": root.get("/admin/find/?kind=product&q=script"),
    }
    for where, page in pages.items():
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and SCRIPT not in text and ESCAPED in text, where


def test_edit_page_links_to_the_objects_history(console: Console, root) -> None:
    token = csrf_token(root, f"/t/{console.a}/admin/product/")
    root.post(f"/t/{console.a}/admin/product/edit/?id=1", data={
        "csrf_token": token, "name": "Anvil XL", "sku": "ACM-1", "price": "12.50", "stock": "5"})
    root.post(f"/t/{console.a}/admin/product/edit/?id=2", data={
        "csrf_token": token, "name": "Skates 2", "sku": "ACM-2", "price": "20.00", "stock": "7"})
    edit = root.get(f"/t/{console.a}/admin/product/edit/?id=1").get_data(as_text=True)
    link = edit.split('id="object-history" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    history = root.get(link).get_data(as_text=True)
    assert "Anvil XL" in history and "Skates 2" not in history
    assert "10.00" in history and "12.50" in history  # old and new values


def test_history_shows_each_principal_only_what_they_may_view(console: Console, root, alice) -> None:
    _post_product(root, console.a, name="In A", sku="HA-1")
    _post_product(root, console.b, name="In B", sku="HB-1")
    everything = root.get("/admin/history/").get_data(as_text=True)
    assert "In A" in everything and "In B" in everything
    mine = alice.get("/admin/history/").get_data(as_text=True)
    assert "In A" in mine and "In B" not in mine
    admin_of_a = signed_in(console.app, f"ada@{console.a}.example", tenant=console.a)
    theirs = admin_of_a.get("/admin/history/").get_data(as_text=True)
    assert "In A" in theirs and "In B" not in theirs
    b_entry = next(e for e in _audit(console) if e["object_label"].startswith("In B"))
    assert alice.get(f"/admin/history/details/?id={b_entry['id']}").status_code == 302  # not found for her


def test_dashboard_counts_and_flags_tenants_behind_head(console: Console, root) -> None:
    console.refresh_stats()
    move_tenant(console.tenancy, console.b, "0002", downgrade=True, options=RunOptions(allow_destructive=True))
    page = root.get("/admin/").get_data(as_text=True)
    row_a = page.split(f'<tr data-tenant="{console.a}"', 1)[1].split("</tr>", 1)[0]
    for model in ("users", "roles", "products"):
        assert f'<td data-count="{model}">2</td>' in row_a
    attention = page.split('id="attention"', 1)[1].split("</div>", 1)[0]
    assert f"{console.b}:" in attention and "behind head" in attention and f"{console.a}:" not in attention


def test_tenants_view_upgrades_selected_tenants(console: Console, root, alice) -> None:
    move_tenant(console.tenancy, console.b, "0001", downgrade=True, options=RunOptions(allow_destructive=True))
    page = root.get("/admin/tenants/").get_data(as_text=True)
    assert "0001" in page and 'badge-warning">2<' in page  # two revisions pending
    globex_id = next(i for i, s in enumerate(sorted([console.a, console.b]), 1) if s == console.b)
    token = csrf_token(root, "/admin/tenants/")
    response = root.post("/admin/tenants/action/", data={"csrf_token": token, "action": "upgrade",
                                                         "rowid": [str(globex_id)]}, follow_redirects=True)
    assert f"{console.b}: 0001 -&gt; 0003" in response.get_data(as_text=True)
    assert console.tenancy.registry.get(console.b) and root.get("/admin/tenants/").status_code == 200
    from tenants.migrate.migrator import current_revision

    assert current_revision(console.tenancy.storage(console.b)) == "0003"
    assert _audit(console)[-1]["action"] == "upgrade"
    assert alice.get("/admin/tenants/").status_code == 403
    assert "Upgrade selected to head" in page


def test_control_grants_give_operators_the_control_views(console: Console) -> None:
    add_staff(console.tenancy.control_engine, "ops@example.com",
              grants=(Grant(None, "tenants"), Grant(None, "runs")))
    ops = signed_in(console.app, "ops@example.com")
    assert ops.get("/admin/tenants/").status_code == 200
    assert ops.get("/admin/runs/").status_code == 200 and ops.get("/admin/results/").status_code == 200
    assert ops.get("/admin/staff/").status_code == 403
    token = csrf_token(ops, "/admin/tenants/")
    assert ops.post("/admin/tenants/action/", data={"csrf_token": token, "action": "upgrade",
                                                    "rowid": ["1"]}).status_code == 403  # view only


def test_runs_view_shows_per_tenant_results(console: Console, root) -> None:
    page = root.get("/admin/runs/").get_data(as_text=True)
    assert "create-tenant" in page
    run_id = page.split("/admin/runs/details/?id=", 1)[1].split("&", 1)[0]
    details = root.get(f"/admin/runs/details/?id={run_id}").get_data(as_text=True)
    assert "<th>tenant</th>" in details and "ok" in details


def test_staff_and_grants_are_for_superusers(console: Console, root, alice) -> None:
    assert alice.get("/admin/staff/").status_code == 403
    token = csrf_token(root, "/admin/staff/")
    response = root.post("/admin/staff/new/", data={
        "csrf_token": token, "email": "Support@Example.com", "full_name": "Support", "active": "y",
        "password": "support password", "grants-0-tenant_slug": console.b, "grants-0-model": "products",
        "grants-0-can_view": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    support = console.app.test_client()
    assert login(support, "support@example.com", "support password").status_code == 302
    assert support.get(f"/t/{console.b}/admin/product/").status_code == 200
    assert support.get(f"/t/{console.a}/admin/product/").status_code == 403
    with console.tenancy.control_engine.connect() as conn:
        stored = conn.execute(select(staff.c.password_hash).where(staff.c.email == "support@example.com")).scalar()
    assert stored not in root.get("/admin/staff/").get_data(as_text=True)
    entry = _audit(console)[-1]
    assert entry["model"] == "staff" and "support password" not in (entry["changes"] or "")


def test_find_across_tenants_searches_only_granted_tenants(console: Console, root, alice) -> None:
    found = root.get("/admin/find/?kind=product&q=GLX-1").get_data(as_text=True)
    assert f"/t/{console.b}/admin/product/details/?id=1" in found
    assert 'id="find-nothing"' in alice.get("/admin/find/?kind=product&q=GLX-1").get_data(as_text=True)
    users = alice.get("/admin/find/?kind=user&q=ada@").get_data(as_text=True)
    assert f"ada@{console.a}.example" in users and f"ada@{console.b}.example" not in users
    assert 'id="find-nothing"' in root.get("/admin/find/?kind=product&q=%25").get_data(as_text=True)


def test_menu_hides_what_a_principal_may_not_open(console: Console, viewer) -> None:
    page = viewer.get(f"/t/{console.a}/admin/product/").get_data(as_text=True)
    assert f'href="/t/{console.a}/admin/user/"' not in page and "/admin/staff/" not in page
    assert f"/t/{console.a}/admin/product/new/" not in page  # no create button without the add right
    with console.session(console.a) as s:
        assert s.scalar(select(Product).where(Product.id == 1)) is not None


def test_tenants_view_shows_drift_state(console: Console, root) -> None:
    from sqlalchemy import text

    storage = console.tenancy.storage(console.b)
    with storage.begin() as conn:
        conn.execute(text("ALTER TABLE products ADD COLUMN hand_made INTEGER"))
    ids = {slug: i for i, slug in enumerate(sorted([console.a, console.b]), 1)}
    drifted = root.get(f"/admin/tenants/details/?id={ids[console.b]}").get_data(as_text=True)
    assert "drifted" in drifted and "hand_made" in drifted
    clean = root.get(f"/admin/tenants/details/?id={ids[console.a]}").get_data(as_text=True)
    assert "no drift" in clean and "hand_made" not in clean
    token = csrf_token(root, "/admin/tenants/")
    response = root.post("/admin/tenants/action/", data={"csrf_token": token, "action": "drift",
                                                         "rowid": [str(i) for i in ids.values()]},
                         follow_redirects=True)
    page = response.get_data(as_text=True)
    assert f"{console.a}: no drift" in page and f"{console.b}: drifted: extra-column products hand_made" in page


def test_find_opens_one_page_of_tenants_and_narrows_by_tenant(console: Console, root) -> None:
    # 60 more tenants without storage: a search that opened every tenant would list them all as unreadable.
    register_tenants(console.tenancy.control_engine, [f"bulk_{i:03d}" for i in range(60)])
    page = root.get("/admin/find/?kind=product&q=GLX-1").get_data(as_text=True)
    assert "Searched 25\n      of 62 tenants (1-25 by slug)" in page and 'id="find-next"' in page
    assert page.count("bulk_") <= 25 + 2  # the unreadable ones of this page only (+ the links' narrow/next)
    narrowed = root.get(f"/admin/find/?kind=product&q=GLX-1&tenant={console.b}").get_data(as_text=True)
    assert "Searched 1\n      of 1 tenants" in narrowed and 'id="find-results"' in narrowed
    last = root.get("/admin/find/?kind=product&q=GLX-1&page=99").get_data(as_text=True)
    assert "(51-62 by slug)" in last and 'id="find-previous"' in last and 'id="find-next"' not in last


@pytest.mark.parametrize("typed", ["\x00", "%", "_", "' OR '1'='1", "<script>alert(1)</script>", "x" * 5000])
def test_find_narrow_by_tenant_takes_hostile_text_as_text(console: Console, root, typed: str) -> None:
    # The same text the switcher's search is proved against: a NUL used to be a 500 on PostgreSQL.
    response = root.get("/admin/find/", query_string={"kind": "product", "q": "GLX-1", "tenant": typed})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in page
    searched = 2 if typed == "\x00" else 0  # a NUL alone narrows nothing; no slug or name holds the others
    assert f"of {searched} tenants" in page
    assert console.tenancy.registry.find(console.a) is not None
