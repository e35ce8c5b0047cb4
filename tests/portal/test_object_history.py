"""An object's History is its own: a reused id (SQLite, or a re-created tenant) never shows another's entries."""

import re

from portal.models import Product
from tests.console_support import Console, csrf_token


def _history_of(root, slug: str, product_id: int) -> str:  # type: ignore[no-untyped-def]
    edit = root.get(f"/t/{slug}/admin/product/edit/?id={product_id}").get_data(as_text=True)
    link = re.search(r'id="object-history"[^>]*href="([^"]+)"|href="([^"]+)"[^>]*id="object-history"', edit)
    assert link, "no history link"
    url = (link.group(1) or link.group(2)).replace("&amp;", "&")
    page = root.get(url)
    assert page.status_code == 200
    return page.get_data(as_text=True)


def _create(console: Console, root, slug: str, name: str, sku: str) -> int:  # type: ignore[no-untyped-def]
    token = csrf_token(root, f"/t/{slug}/admin/product/")
    assert root.post(f"/t/{slug}/admin/product/new/", data={
        "csrf_token": token, "name": name, "sku": sku, "price": "1", "stock": "1"}).status_code == 302
    return next(p.id for p in console.products(slug).values() if p.sku == sku)


def _delete(root, slug: str, product_id: int) -> None:  # type: ignore[no-untyped-def]
    token = csrf_token(root, f"/t/{slug}/admin/product/")
    assert root.post(f"/t/{slug}/admin/product/delete/", data={"csrf_token": token, "id": str(product_id)}
                     ).status_code == 302


def test_new_object_with_a_reused_id_has_its_own_history(console: Console, root) -> None:
    slug = console.a
    old = _create(console, root, slug, "Doomed gadget", "DOOM-1")
    _delete(root, slug, old)
    new = _create(console, root, slug, "Fresh gadget", "FRESH-1")
    if new == old:  # SQLite reuses the id of the deleted row
        history = _history_of(root, slug, new)
        assert "Fresh gadget" in history and "Doomed gadget" not in history
    else:  # PostgreSQL never does: move the new one onto the old id, as an import might
        with console.session(slug) as s:
            s.get(Product, new).id = old
            s.commit()
        assert "Doomed gadget" not in _history_of(root, slug, old)


def test_object_made_outside_the_console_does_not_inherit_a_deleted_ones_history(console: Console, root) -> None:
    slug = console.a
    old = _create(console, root, slug, "Doomed gadget", "DOOM-1")
    _delete(root, slug, old)
    with console.session(slug) as s:
        s.add(Product(id=old, name="Imported gadget", sku="IMP-1"))
        s.commit()
    assert "Doomed gadget" not in _history_of(root, slug, old)
