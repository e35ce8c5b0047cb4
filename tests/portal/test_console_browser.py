"""The console in a real browser: Debian's Chromium driven by Playwright, over real PostgreSQL.

The app is served by a real HTTP server on 127.0.0.1 (a thread, stopped after). Screenshots
of the main pages go to test-artifacts/ (not committed) for a person to look at. Skipped
when /usr/bin/chromium is missing, except under CI=true, where that is a failure.
"""

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from portal import create_app
from portal.config import TestConfig
from tenants.core.settings import PROJECT_ROOT, TenantSettings
from tenants.migrate.control import ensure_control
from tests.conftest import create_pg_database, drop_pg_database, require_postgres
from tests.console_support import PASSWORD, Console, seed

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
# Werkzeug's development server, serving the console in a thread of this process, leaves a static
# file open when Chromium drops a font request half-way; its garbage collection is not a test failure.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings(r"ignore:Exception ignored in. <_io\.FileIO name='[^']*/static/:"
                               "pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings(r"ignore:unclosed file <_io\.BufferedReader name='[^']*/static/:ResourceWarning"),
]


@dataclass
class Served:
    """The console served over HTTP, and what a browser saw of its policy."""

    url: str
    console: Console
    csp_violations: list[str] = field(default_factory=list)


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing under CI", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The seeded console on PostgreSQL, served on a free port of 127.0.0.1."""
    _require_chromium()
    require_postgres()
    url = create_pg_database("tp_browser")
    tmp = tmp_path_factory.mktemp("browser")
    settings = TenantSettings(control_url=url, tenant_dir=tmp / "tenants")
    app = create_app(TestConfig, {"DATABASE_URL": url, "INSTANCE_PATH": str(tmp),
                                  "PORTAL_TENANT_DIR": str(settings.tenant_dir)})
    ensure_control(app.extensions["tenancy"])
    console = Console(app)
    seed(console)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_port}", console)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["tenancy"].close()
        with app.app_context():
            from portal.extensions import db

            db.engine.dispose()
        drop_pg_database(url)


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator:  # type: ignore[type-arg]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, served: Served) -> Iterator:  # type: ignore[no-untyped-def,type-arg]
    context = browser.new_context(base_url=served.url, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(15000)
    tab.on("console", lambda msg: served.csp_violations.append(msg.text)
           if "Content Security Policy" in msg.text else None)
    yield tab
    context.close()


def shot(tab, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    # caret="initial": Playwright would otherwise inject a caret-hiding <style>, which the CSP reports
    # as an inline style when a text field (the select2 tenant search's) has focus.
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, caret="initial")


def sign_in(tab, email: str, password: str = PASSWORD, tenant: str = "") -> None:  # type: ignore[no-untyped-def]
    tab.goto("/")
    tab.click("#to-console")
    tab.fill("#email", email)
    tab.fill("#password", password)
    tab.fill("#tenant", tenant)
    tab.click("#sign-in")


def _type_in_tenant_search(tab, typed: str) -> list[str]:  # type: ignore[no-untyped-def]
    tab.wait_for_load_state()
    tab.click("#s2id_tenant-search")  # select2 3.5 wraps the field in a container named after it
    tab.fill("#select2-drop .select2-input", typed)
    tab.wait_for_selector("#select2-drop .select2-result-label, #select2-drop .select2-no-results")
    tab.wait_for_function("() => !document.querySelector('#select2-drop .select2-active')")  # the answer is in
    return tab.locator("#select2-drop .select2-result-label").all_inner_texts()


def search_tenants(tab, typed: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Type into the navbar's tenant search (Flask-Admin's select2); return the offered entries, close it."""
    offered = _type_in_tenant_search(tab, typed)
    tab.keyboard.press("Escape")
    return offered


def switch_tenant(tab, slug: str) -> None:  # type: ignore[no-untyped-def]
    """Find `slug` in the tenant search and pick it: the page moves to that tenant."""
    offered = _type_in_tenant_search(tab, slug)
    assert any(f"({slug})" in entry for entry in offered), offered
    tab.click(f"#select2-drop .select2-result-label:has-text('({slug})')")


def test_failed_sign_in_shows_a_message(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, "root@example.com", "not the password")
    assert page.locator("#login-error").inner_text() == "Invalid email or password."
    shot(page, "login-failed")


@pytest.mark.slow
def test_staff_day_in_the_console(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    a, b = served.console.a, served.console.b
    sign_in(page, "root@example.com")
    page.wait_for_selector("#dashboard-tenants")
    shot(page, "dashboard")

    # Switch tenant from the navbar's search, then create a product there.
    switch_tenant(page, a)
    page.wait_for_url(f"**/t/{a}/admin/")
    page.click(f"a.btn[href='/t/{a}/admin/product/']")
    page.click(f"a[href^='/t/{a}/admin/product/new/']")
    page.fill("#name", "Browser Widget")
    page.fill("#sku", "BRW-1")
    page.fill("#price", "12.00")
    page.fill("#stock", "4")
    page.click("input[type=submit][value='Save']")
    page.wait_for_selector("text=Record was successfully created.")
    assert page.locator("td:has-text('BRW-1')").count() == 1
    shot(page, "products-acme")

    # The other tenant does not have it (the switcher keeps the open model: Products).
    switch_tenant(page, b)
    page.wait_for_url(f"**/t/{b}/admin/product/")
    assert page.locator("text=Globex thing 1").count() == 1 and page.locator("text=BRW-1").count() == 0
    shot(page, "products-globex")

    # Edit it in its own tenant and see the change in History.
    page.goto(f"/t/{a}/admin/product/?search=BRW-1")
    page.click("a[title='Edit Record']")
    page.fill("#price", "15.50")
    page.click("input[type=submit][value='Save']")
    page.wait_for_selector("text=Record was successfully saved.")
    page.click("a[title='Edit Record']")
    page.click("#object-history")
    history = page.locator("table.model-list").inner_text()
    assert "Browser Widget" in history and "12.00" in history and "15.50" in history
    shot(page, "history")

    # Export CSV from the list.
    page.goto(f"/t/{a}/admin/product/")
    with page.expect_download() as download:
        page.click("a:has-text('Export')")
    exported = Path(download.value.path()).read_text()
    assert "BRW-1" in exported and "GLX-1" not in exported

    # A bulk action through Flask-Admin's own JavaScript (inline handlers under the CSP).
    page.check(".action-checkbox[value='1']")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("a:has-text('With selected')")
    page.click("a.dropdown-item:has-text('Deactivate')")
    page.wait_for_selector("text=1 record(s) deactivated.")
    shot(page, "bulk-action")
    page.click("#sign-out")
    page.wait_for_selector("text=You have been signed out.")
    assert served.csp_violations == [], "\n".join(served.csp_violations)


def test_tenant_admin_is_blocked_from_another_tenant(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    a, b = served.console.a, served.console.b
    sign_in(page, f"ada@{a}.example", tenant=a)
    page.wait_for_selector("#dashboard-tenants")
    assert page.locator("#dashboard-tenants tbody tr").count() == 1  # their own tenant only
    switch_tenant(page, a)
    page.wait_for_url(f"**/t/{a}/admin/")
    assert page.locator("#tenant-title").inner_text().startswith("Acme")
    assert search_tenants(page, b) == [] and search_tenants(page, "glo") == []  # B's slug typed: nothing
    shot(page, "tenant-admin-home")
    response = page.goto(f"/t/{b}/admin/product/")
    assert response.status == 403
    shot(page, "tenant-admin-forbidden")
    assert served.csp_violations == [], "\n".join(served.csp_violations)


FIRE_INLINE_HANDLERS = """() => {
    const fired = [];
    for (const el of document.querySelectorAll('[onclick]')) {
        fired.push(el.getAttribute('onclick'));
        el.dispatchEvent(new Event('click', {cancelable: true}));  // compiles and runs the handler, no navigation
    }
    return fired;
}"""


def _console_pages(served: Served) -> list[str]:
    a = served.console.a
    pages = ["/admin/", f"/t/{a}/admin/", "/admin/find/?kind=user&q=ada", "/admin/find/?kind=product&q=a"]
    for model in ("user", "role", "product"):
        base = f"/t/{a}/admin/{model}"
        pages += [f"{base}/", f"{base}/new/", f"{base}/edit/?id=1", f"{base}/details/?id=1"]
    for view in ("tenants", "runs", "results", "staff", "history"):
        pages += [f"/admin/{view}/", f"/admin/{view}/details/?id=1"]
    return pages + ["/admin/staff/new/", "/admin/staff/edit/?id=1", "/admin/tenants/create/",
                    f"/admin/tenants/drop/?slug={a}", "/admin/account/password/"]


def test_every_console_page_runs_its_inline_handlers_under_the_csp(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    served.csp_violations.clear()
    sign_in(page, "root@example.com")
    page.wait_for_selector("#dashboard-tenants")
    page.on("dialog", lambda dialog: dialog.dismiss())  # confirmations say no: nothing is changed
    fired: set[str] = set()
    for url in _console_pages(served):
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        fired.update(page.evaluate(FIRE_INLINE_HANDLERS))
    assert "faForm.addInlineField(this, 'grants');" in fired
    assert served.csp_violations == [], "\n".join(served.csp_violations)


def test_new_staff_member_gets_grants_in_the_console(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    served.csp_violations.clear()
    a = served.console.a
    sign_in(page, "root@example.com")
    page.wait_for_selector("#dashboard-tenants")
    page.goto("/admin/staff/new/")
    page.fill("#email", "granted@example.com")
    page.fill("#password", "a long enough password")
    page.click("a:has-text('Add Grants')")
    page.wait_for_selector("select[name='grants-0-model']")
    # The grant's tenant is Flask-Admin's select2 ajax search (grant-tenants/), not a select of every tenant.
    page.click("#s2id_grants-0-tenant_slug")
    page.fill("#select2-drop .select2-input", a)
    page.wait_for_function("() => !document.querySelector('#select2-drop .select2-active')")
    page.click(f"#select2-drop .select2-result-label:has-text('({a})')")
    page.select_option("select[name='grants-0-model']", "products")
    page.check("input[name='grants-0-can_change']")
    page.click("input[type=submit][value='Save']")
    page.wait_for_selector("text=Record was successfully created.")
    shot(page, "staff-with-grant")
    assert served.csp_violations == [], "\n".join(served.csp_violations)
    with served.console.tenancy.control_engine.connect() as conn:
        from sqlalchemy import select

        from tenants.core.control_schema import staff, staff_grants
        rows = conn.execute(select(staff_grants.c.tenant_slug, staff_grants.c.model, staff_grants.c.can_change)
                            .join(staff, staff.c.id == staff_grants.c.staff_id)
                            .where(staff.c.email == "granted@example.com")).all()
    assert [tuple(r) for r in rows] == [(a, "products", True)]


def test_the_switcher_search_offers_granted_tenants_escaped(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import delete

    from tenants.core.control_schema import tenants
    from tests.console_support import register_tenants

    served.csp_violations.clear()
    a, b = served.console.a, served.console.b
    engine = served.console.tenancy.control_engine
    register_tenants(engine, ["xss_probe"], name="<img src=x onerror=window.pwned=1>{slug}")
    try:
        sign_in(page, "viewer@example.com")  # products of acme only
        page.wait_for_selector("#dashboard-tenants")
        assert search_tenants(page, "") == [f"Acme ({a})"]
        assert search_tenants(page, b) == [] and search_tenants(page, "xss") == []
        page.click("#sign-out")
        sign_in(page, "root@example.com")
        page.wait_for_selector("#dashboard-tenants")
        offered = search_tenants(page, "xss")
        assert offered == ["<img src=x onerror=window.pwned=1>xss_probe (xss_probe)"]  # shown as text
        assert page.evaluate("() => window.pwned === undefined")
        page.goto(f"/t/{a}/admin/product/")
        switch_tenant(page, b)
        page.wait_for_url(f"**/t/{b}/admin/product/")  # the open model is kept
        assert page.locator("#current-tenant").inner_text() == b
        shot(page, "switcher-search")
    finally:
        with engine.begin() as conn:
            conn.execute(delete(tenants).where(tenants.c.slug == "xss_probe"))
    assert served.csp_violations == [], "\n".join(served.csp_violations)


def test_the_switcher_works_without_javascript(browser, served: Served) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=served.url, java_script_enabled=False)
    tab = context.new_page()
    try:
        sign_in(tab, "root@example.com")
        tab.wait_for_selector("#dashboard-tenants")
        tab.fill("#tenant-search", "glo")
        tab.click("#tenant-switch-go")
        tab.wait_for_url(f"**/t/{served.console.b}/admin/")
    finally:
        context.close()
