"""Tenants whose schema is not at the code's head: served a clear page, read-only, never a 500.

The console's code expects the head revision of the tenant chain. A tenant behind it (a
downgrade, a failed upgrade) or ahead of it (code rolled back) may lack columns the pages
use. On each tenant request the tenant's revision (from the ledger, read in the same query as
the registry: no extra round trip) is compared with the head (read once per process):
- writes are refused with a page that names both revisions and, for those with the right,
  offers "Upgrade to head" (the Tenants view's upgrade, with the fleet's guard);
- reads go ahead with that page's banner on top; a read the schema cannot serve gets the page.
A database error on any tenant page gives the same page (503), not a bare 500.
"""

import logging
from typing import Any

from flask import Flask, current_app, g, request
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from portal.permissions import can_control

log = logging.getLogger(__name__)

# The views a tenant in quarantine still serves (GET only): lists, details, the overview.
READABLE_VIEWS = ("index_view", "details_view", "index")


def chain_head(tenancy: Any) -> str | None:
    """Return the code's head revision; with unmerged heads, all of them joined (no tenant is at 'head' then)."""
    return ", ".join(tenancy.heads()) or None


def quarantine_state() -> dict[str, Any] | None:
    """Return {revision, head} when this request's tenant is not at head, else None."""
    tenant = g.get("tenant")
    if tenant is None:
        return None
    if "quarantine" not in g:
        head = chain_head(current_app.extensions["tenancy"])
        revision = g.get("tenant_revisions", {}).get(tenant.slug)
        g.quarantine = None if revision == head else {"revision": revision, "head": head,
                                                      "ahead": revision is not None and not _known(revision)}
    return g.quarantine


def _known(revision: str) -> bool:
    try:
        return current_app.extensions["tenancy"].scripts.get_revision(revision) is not None
    except Exception:  # an id the code does not know: the tenant is ahead of (or beside) this code
        return False


def may_upgrade() -> bool:
    """Return whether the signed-in person may upgrade tenants (superuser or tenants:change)."""
    return current_user.is_authenticated and can_control(current_user, "tenants", "change")


def quarantine_page(status: int, unreadable: bool = False) -> tuple[str, int]:
    """Render the tenant's quarantine page in the console's layout."""
    view = current_app.extensions["console_tenant_home"]
    return view.render("admin/quarantine.html", tenant=g.tenant, state=quarantine_state(),
                       unreadable=unreadable, may_upgrade=may_upgrade()), status


def _refuse_writes() -> Any:
    if quarantine_state() is None:
        return None
    view = (request.endpoint or "").rsplit(".", 1)[-1]
    if request.method == "GET" and view in READABLE_VIEWS:
        return None
    return quarantine_page(503)


def _database_error(error: SQLAlchemyError) -> Any:
    if g.get("tenant") is None:
        raise error
    log.warning("tenant %s could not be read: %s", g.tenant.slug, str(error).splitlines()[0][:300])
    return quarantine_page(503, unreadable=True)


def init_app(app: Flask) -> None:
    """Refuse writes to tenants not at head, and turn their database errors into the quarantine page."""
    app.before_request(_refuse_writes)
    app.register_error_handler(SQLAlchemyError, _database_error)
    app.jinja_env.globals["tenant_quarantine"] = quarantine_state
    app.jinja_env.globals["may_upgrade_tenants"] = may_upgrade
