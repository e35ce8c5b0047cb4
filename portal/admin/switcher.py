"""The tenant switcher: a search over the tenants the signed-in person may enter, and a plain GET to switch.

The navigation bar holds a small form (`GET /admin/switch/?q=...`) that works without
JavaScript; portal/static/console/switcher.js turns its field into Flask-Admin's own select2
(3.5, already on every console page) fed by `search/`, which answers like Flask-Admin's ajax
model loaders: a JSON list of [id, text] pairs, bounded, filtered by the grants in SQL.
"""

from typing import Any

from flask import current_app, jsonify, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user

from portal.admin.base import SecureView
from portal.permissions import can
from portal.tenant_scope import SEARCH_LIMIT, search_tenants

TENANT_VIEW_MODELS = {"user": "users", "role": "roles", "product": "products"}  # view endpoint -> grant model


def switch_target(slug: str, endpoint: str | None) -> str:
    """Link to the same model's list in tenant `slug` when it is viewable there, else that tenant's overview."""
    model = TENANT_VIEW_MODELS.get(endpoint or "")
    if model and can(current_user, slug, model, "view"):
        return url_for(f"{endpoint}.index_view", tenant=slug)
    return url_for("tenant_home.index", tenant=slug)


class SwitcherView(SecureView, BaseView):
    """Find a tenant and go there (reached from the navigation bar, not the menu)."""

    def is_accessible(self) -> bool:
        return current_user.is_authenticated

    def is_visible(self) -> bool:
        return False

    def _engine(self) -> Any:
        return current_app.extensions["tenancy"].control_engine

    @expose("/")
    def index(self) -> Any:
        """Go to the tenant named exactly (`tenant`, or `q` equal to a slug), else list the matches of `q`."""
        model = request.args.get("model", "")
        term = request.args.get("tenant") or request.args.get("q", "")
        matches = search_tenants(self._engine(), current_user, term, limit=SEARCH_LIMIT)
        exact = term.strip().lower()
        if any(slug == exact for slug, _ in matches):
            return redirect(switch_target(exact, model))
        if len(matches) == 1 and "tenant" not in request.args:
            return redirect(switch_target(matches[0][0], model))
        status = 200 if matches else 404
        return self.render("admin/switch.html", matches=matches, term=term, model=model,
                           limit=SEARCH_LIMIT), status

    @expose("/search/")
    def search(self) -> Any:
        """Answer select2: [[slug, "Name (slug)"], ...] of the tenants whose slug or name contains `query`."""
        found = search_tenants(self._engine(), current_user, request.args.get("query", ""),
                               request.args.get("offset", 0), request.args.get("limit", 10))
        return jsonify([[slug, text] for slug, text in found])
