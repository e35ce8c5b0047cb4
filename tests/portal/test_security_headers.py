"""Security headers: a CSP that Flask-Admin's pages work under, nosniff, frame denial."""

import base64
import hashlib
import re

from portal.security_headers import handler_hashes
from tests.console_support import Console

PAGES = [("/", False), ("/login", False), ("/admin/", True), ("/t/acme/admin/product/", True),
         ("/admin/history/", True), ("/admin/static/admin/js/helpers.js", False), ("/t/globex/admin/product/", False)]


def test_every_response_has_the_headers(console: Console, root) -> None:
    for path, signed_in in PAGES:
        client = root if signed_in else console.app.test_client()
        response = client.get(path)
        response.close()
        assert response.status_code in (200, 302), path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "default-src 'self'" in csp
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp


def test_every_script_on_a_console_page_carries_the_nonce(console: Console, root) -> None:
    response = root.get(f"/t/{console.a}/admin/product/")
    nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
    page = response.get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)
    assert root.get(f"/t/{console.a}/admin/product/").headers["Content-Security-Policy"] != \
        response.headers["Content-Security-Policy"]  # a new nonce per response


def test_inline_handlers_on_the_page_are_allowed_by_hash(console: Console, root) -> None:
    response = root.get(f"/t/{console.a}/admin/product/")
    csp = response.headers["Content-Security-Policy"]
    handlers = set(re.findall(r'onclick="([^"]+)"', response.get_data(as_text=True)))
    assert len(handlers) >= 4  # row delete, and the activate / deactivate / delete actions
    assert all(h in csp for h in handler_hashes(["activate", "deactivate", "delete"]))
    for handler in handlers:
        digest = base64.b64encode(hashlib.sha256(handler.replace("&#39;", "'").encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp, handler


def test_console_pages_are_not_cached(console: Console, root) -> None:
    assert root.get(f"/t/{console.a}/admin/product/").headers["Cache-Control"] == "no-store"
