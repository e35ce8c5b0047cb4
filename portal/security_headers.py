"""Security headers on every response: a nonce-based CSP, nosniff and frame denial.

Flask-Admin's Bootstrap 4 pages load their scripts and styles from this site and mark
them with the CSP nonce (Admin(csp_nonce_generator=...)). A few of its templates still use
inline `onclick` handlers; rather than allowing inline script, the policy lists the exact
SHA-256 hash of each of those handler strings ('unsafe-hashes'), built from the actions
the views declare.
"""

import base64
import hashlib
import secrets
from collections.abc import Iterable

from flask import Flask, current_app, g, request
from werkzeug.wrappers import Response

# Inline handlers in Flask-Admin 2.2's bootstrap4 templates (row delete, filters, links).
FIXED_HANDLERS = (
    "return faHelpers.safeConfirm('Are you sure you want to delete this record?');",
    "return false;",
    "javascript:void(0)",
)


def csp_nonce() -> str:
    """Return this request's CSP nonce (made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def handler_hashes(action_names: Iterable[str], inline_fields: Iterable[str] = ()) -> list[str]:
    """Return the CSP hashes of Flask-Admin's inline handlers for these action names and inline form fields."""
    handlers = list(FIXED_HANDLERS) + [f"return modelActions.execute('{name}');" for name in sorted(set(action_names))]
    handlers += [f"faForm.addInlineField(this, '{name}');" for name in sorted(set(inline_fields))]
    return [_hash(h) for h in handlers]


def content_security_policy(nonce: str, hashes: list[str]) -> str:
    """Return the policy: same-origin everything, nonce'd scripts, no framing, no plugins."""
    script = " ".join(["'self'", f"'nonce-{nonce}'", "'unsafe-hashes'", *hashes])
    return "; ".join([
        "default-src 'self'", f"script-src {script}", "style-src 'self'", "img-src 'self' data:",
        "font-src 'self'", "connect-src 'self'", "object-src 'none'", "base-uri 'self'",
        "form-action 'self'", "frame-ancestors 'none'",
    ])


def add_security_headers(response: Response) -> Response:
    """Set the security headers on a response."""
    hashes = current_app.extensions.get("csp_handler_hashes", [])
    response.headers["Content-Security-Policy"] = content_security_policy(csp_nonce(), hashes)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint and not request.endpoint.endswith("static"):
        # Console pages show tenant data: keep them out of shared and back-button caches.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    """Add the headers to every response of `app`."""
    app.extensions.setdefault("csp_handler_hashes", handler_hashes([]))
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(add_security_headers)
