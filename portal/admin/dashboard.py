"""The console's front page: per-tenant counts, and tenants that need attention."""

from typing import Any

from flask import current_app, redirect
from flask_admin import AdminIndexView, expose
from flask_login import current_user

from portal.admin.base import SecureView
from portal.admin.control_views import FAILED_RESULTS
from portal.admin.tenant_views import tenant_counts
from portal.auth import login_url_for_here
from portal.permissions import TENANT_MODELS, can, can_control, visible_slugs
from portal.quarantine import chain_head
from tenants.core.binding import tenant_session
from tenants.core.errors import TenantError
from tenants.core.ledger import last_results, ledger_versions
from tenants.core.tenancy import Tenancy

COUNTED_TENANTS = 50  # counting opens every tenant: the front page counts this many at most


def visible_tenants(tenancy: Tenancy, principal: Any) -> list[Any]:
    """Return the registry rows of the tenants `principal` may enter."""
    tenants = tenancy.registry.all()
    allowed = set(visible_slugs(principal, [t.slug for t in tenants]))
    return [t for t in tenants if t.slug in allowed]


def fleet_rows(tenancy: Tenancy, tenants: list[Any], principal: Any) -> list[dict[str, Any]]:
    """Return one row per tenant: counts (for the first few), ledger revision, last result."""
    head = chain_head(tenancy)
    versions = ledger_versions(tenancy.control_engine)
    last = last_results(tenancy.control_engine)
    rows = []
    for i, tenant in enumerate(tenants):
        counts, error = None, None
        if i < COUNTED_TENANTS and tenant.status == "active":
            try:
                with tenant_session(tenancy.storage(tenant)) as session:
                    counts = tenant_counts(session)
            except (TenantError, Exception) as e:  # one broken tenant must not break the front page
                error = str(getattr(e, "orig", e)).splitlines()[0][:200]
        result = last.get(tenant.slug)
        revision = versions.get(tenant.slug)
        if counts is not None:  # only the tables a grant lets the viewer see
            counts = {m: n for m, n in counts.items() if can(principal, tenant.slug, m, "view")}
        rows.append({"tenant": tenant, "counts": counts, "error": error, "revision": revision,
                     "behind": revision != head, "last": result,
                     "failed": bool(result and result["status"] in FAILED_RESULTS)})
    return rows


class DashboardView(SecureView, AdminIndexView):
    def is_accessible(self) -> bool:
        return current_user.is_authenticated

    @expose("/")
    def index(self) -> Any:
        if not current_user.is_authenticated:
            return redirect(login_url_for_here())
        tenancy = current_app.extensions["tenancy"]
        rows = fleet_rows(tenancy, visible_tenants(tenancy, current_user), current_user)
        attention = [r for r in rows if r["behind"] or r["failed"]]
        return self.render("admin/dashboard.html", rows=rows, models=TENANT_MODELS, attention=attention,
                           head=chain_head(tenancy), counted=COUNTED_TENANTS,
                           show_tenants_link=can_control(current_user, "tenants", "view"))
