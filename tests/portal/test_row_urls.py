"""Links built once per page are exactly the links url_for builds, for hostile values too, on the console's lists."""

import re
from html import unescape

import pytest
from flask import Blueprint, Flask, url_for

from portal.admin.row_urls import PLACEHOLDER, cached_row_url, row_url
from tests.console_support import Console, register_tenants

HOSTILE = ["1", 0, 12345, None, True, "acme", "a b", "a&b=c", "../x", "x/y", "%41", "ü", "", "?", "#frag", "<script>",
           PLACEHOLDER, f"{PLACEHOLDER}{PLACEHOLDER}", "a.b-c_d~e"]


@pytest.fixture
def plain_app() -> Flask:
    app = Flask(__name__)
    pages = Blueprint("pages", __name__, url_prefix="/t/<tenant>")
    pages.add_url_rule("/details/", "details", lambda tenant: "")
    pages.add_url_rule("/item/<name>/", "item", lambda tenant, name: "")
    app.register_blueprint(pages)
    return app


@pytest.mark.parametrize("value", HOSTILE)
def test_a_query_value_gives_the_link_url_for_gives(plain_app: Flask, value: object) -> None:
    with plain_app.test_request_context():
        link = row_url("pages.details", "id", tenant="acme", url="/back?x=1&y=2")
        assert link(value) == url_for("pages.details", id=value, tenant="acme", url="/back?x=1&y=2")


@pytest.mark.parametrize("value", [v for v in HOSTILE if v not in ("", "?", "#frag", None)])
def test_a_path_value_gives_the_link_url_for_gives(plain_app: Flask, value: object) -> None:
    with plain_app.test_request_context():
        assert row_url("pages.item", "name", tenant="acme")(value) == url_for("pages.item", name=value, tenant="acme")
        assert row_url("pages.details", "tenant")(value) == url_for("pages.details", tenant=value)


def test_a_fixed_value_holding_the_placeholder_still_links_right(plain_app: Flask) -> None:
    with plain_app.test_request_context():
        link = row_url("pages.details", "id", tenant="acme", url=PLACEHOLDER)
        assert link("7") == url_for("pages.details", id="7", tenant="acme", url=PLACEHOLDER)


def test_the_builder_is_made_once_per_request_and_fixed_values(plain_app: Flask) -> None:
    with plain_app.test_request_context():
        first = cached_row_url("pages.details", "id", tenant="acme")
        assert cached_row_url("pages.details", "id", tenant="acme") is first
        other = cached_row_url("pages.details", "id", tenant="globex")
        assert other is not first and other("1") == url_for("pages.details", id="1", tenant="globex")
    with plain_app.test_request_context():
        assert cached_row_url("pages.details", "id", tenant="acme") is not first


def hrefs(page: str, pattern: str) -> list[str]:
    return [unescape(h) for h in re.findall(rf'href="({pattern}[^"]*)"', page)]


def test_the_lists_link_every_row_as_url_for_does(console: Console, root) -> None:
    register_tenants(console.tenancy.control_engine, [f"bulk_{i:03d}" for i in range(25)])
    page = root.get("/admin/tenants/").get_data(as_text=True)
    ids = re.findall(r'name="rowid" class="action-checkbox" value="(\d+)"', page)
    details = hrefs(page, "/admin/tenants/details/")
    drops = hrefs(page, "/admin/tenants/drop/")
    assert len(ids) == len(details) == len(drops) == 20
    with console.app.test_request_context("/admin/tenants/"):
        back = unescape(re.search(r'details/\?id=\d+&amp;url=([^"]+)"', page).group(1))
        assert details == [url_for("tenants.details_view", id=i, url=back.replace("%3D", "=")) for i in ids]
        slugs = re.findall(r'name="slug" value="([^"]+)"', page)
        assert drops == [url_for("tenants.drop_view_page", slug=s) for s in slugs]
    dashboard = root.get("/admin/").get_data(as_text=True)
    slugs = re.findall(r'<tr data-tenant="([^"]+)"', dashboard)
    with console.app.test_request_context("/admin/"):
        rows = dashboard.split('id="dashboard-tenants"', 1)[1].split("</table>", 1)[0]
        assert len(slugs) == 20 and hrefs(rows, "/t/") == [url_for("tenant_home.index", tenant=s) for s in slugs]


def test_a_tenant_list_links_its_rows_edit_and_details_pages(console: Console, root) -> None:
    for i in range(3):
        console.add_product(console.a, f"Row {i}", f"ROW-{i}")
    page = root.get(f"/t/{console.a}/admin/product/").get_data(as_text=True)
    ids = re.findall(r'name="rowid" class="action-checkbox" value="(\d+)"', page)
    edits = hrefs(page, f"/t/{console.a}/admin/product/edit/")
    details = hrefs(page, f"/t/{console.a}/admin/product/details/")
    assert len(ids) == len(edits) == len(details) >= 3
    for i, edit, detail in zip(ids, edits, details, strict=True):
        assert edit.startswith(f"/t/{console.a}/admin/product/edit/?id={i}&url=")
        assert root.get(edit).status_code == 200 and root.get(detail).status_code == 200
