"""The tenant is named where staff look (titles, headings, flashes, export names); the switcher keeps the model."""

import re

from tests.console_support import Console, csrf_token


def test_tenant_name_in_title_heading_and_flash(console: Console, root) -> None:
    page = root.get(f"/t/{console.a}/admin/product/").get_data(as_text=True)
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert "Acme" in title
    heading = re.search(r'<h4 class="mb-4"[^>]*>(.*?)</h4>', page, re.S).group(1)
    assert "Acme" in heading and "Products" in heading
    token = csrf_token(root, f"/t/{console.a}/admin/product/")
    response = root.post(f"/t/{console.a}/admin/product/new/", data={
        "csrf_token": token, "name": "Named", "sku": "NAM-1", "price": "1", "stock": "1"}, follow_redirects=True)
    assert re.search(r"Acme \(acme\):</strong>\s*Record was successfully created", response.get_data(as_text=True))


def test_export_file_name_names_the_tenant(console: Console, root) -> None:
    response = root.get(f"/t/{console.a}/admin/product/export/csv/")
    disposition = response.headers["Content-Disposition"]
    assert f"filename={console.a}_Products_" in disposition.replace('"', "")


def test_switcher_keeps_the_current_model(console: Console, root, viewer) -> None:
    page = root.get(f"/t/{console.a}/admin/product/?page_size=50").get_data(as_text=True)
    form = page.split('id="tenant-switch-form"', 1)[1].split("</form>", 1)[0]
    assert 'name="model" value="product"' in form
    switched = root.get(f"/admin/switch/?tenant={console.b}&model=product")
    assert switched.status_code == 302 and switched.headers["Location"] == f"/t/{console.b}/admin/product/"
    overview = root.get(f"/t/{console.a}/admin/").get_data(as_text=True)
    assert 'name="model" value=""' in overview.split('id="tenant-switch-form"', 1)[1].split("</form>", 1)[0]
    assert root.get(f"/admin/switch/?tenant={console.b}&model=").headers["Location"] == f"/t/{console.b}/admin/"
    # A model the person may not view in the target tenant leads to its overview instead.
    assert viewer.get(f"/admin/switch/?tenant={console.a}&model=user").headers["Location"] == f"/t/{console.a}/admin/"
