"""The Flask-Admin console: one Admin, tenant views under /t/<tenant>/admin, control views under /admin."""

from flask import Flask, request
from flask_admin.model.fields import InlineFieldList
from flask_admin.theme import Bootstrap4Theme
from wtforms.fields.core import UnboundField

from portal.extensions import db
from portal.security_headers import csp_nonce, handler_hashes

TENANT_URL = "/t/<tenant>/admin"


def inline_field_ids(views: list) -> set[str]:
    """Return the ids of the inline form lists ("Add Grants" ...) of these views' create and edit forms."""
    ids = set()
    for view in views:
        for form_class in (getattr(view, "_create_form_class", None), getattr(view, "_edit_form_class", None)):
            for name in dir(form_class) if form_class is not None else ():
                unbound = getattr(form_class, name, None)
                if isinstance(unbound, UnboundField) and issubclass(unbound.field_class, InlineFieldList):
                    ids.add(name)
    return ids


def init_app(app: Flask) -> None:
    """Build the console's Admin and views for `app` (one set per app: views hold per-app state)."""
    from portal.account import AccountView
    from portal.admin.base import ConsoleAdmin
    from portal.admin.control_models import AuditEntry, MigrationRun, StaffMember, TenantRecord, TenantResultRecord
    from portal.admin.control_views import ResultsView, RunsView, StaffView, TenantsView
    from portal.admin.dashboard import DashboardView
    from portal.admin.find import FindView
    from portal.admin.history import HistoryView
    from portal.admin.switcher import TENANT_VIEW_MODELS, SwitcherView
    from portal.admin.tenant_views import ProductView, RoleView, TenantHomeView, UserView
    from portal.models import Product, Role, User
    from portal.tenancy_request import menu_tenant_slug

    admin = ConsoleAdmin(
        app, name="Tenant Portal", theme=Bootstrap4Theme(base_template="admin/console_base.html", fluid=True),
        index_view=DashboardView(name="Dashboard", url="/admin", endpoint="admin"), csp_nonce_generator=csp_nonce,
    )
    tenant_home = TenantHomeView(name="Overview", endpoint="tenant_home", url=TENANT_URL)
    history = HistoryView(AuditEntry, db, name="History", endpoint="history", url="/admin/history",
                          category="Control")
    admin.add_views(
        tenant_home,
        UserView(User, name="Users", endpoint="user", url=f"{TENANT_URL}/user"),
        RoleView(Role, name="Roles", endpoint="role", url=f"{TENANT_URL}/role"),
        ProductView(Product, name="Products", endpoint="product", url=f"{TENANT_URL}/product"),
        FindView(name="Find", endpoint="find", url="/admin/find"),
        AccountView(name="My account", endpoint="account", url="/admin/account"),
        SwitcherView(name="Switch tenant", endpoint="switch", url="/admin/switch"),
        TenantsView(TenantRecord, db, name="Tenants", endpoint="tenants", url="/admin/tenants", category="Control"),
        RunsView(MigrationRun, db, name="Migration runs", endpoint="runs", url="/admin/runs", category="Control"),
        ResultsView(TenantResultRecord, db, name="Tenant results", endpoint="results", url="/admin/results",
                    category="Control"),
        StaffView(StaffMember, db, name="Staff & grants", endpoint="staff", url="/admin/staff", category="Control"),
        history,
    )
    app.extensions["console_history_view"] = history
    app.extensions["console_tenant_home"] = tenant_home
    app.extensions["console_dashboard"] = admin.index_view
    actions = {name for view in admin._views for name in getattr(view, "_actions_data", {})}
    app.extensions["csp_handler_hashes"] = handler_hashes(actions, inline_field_ids(admin._views))

    @app.context_processor
    def tenant_switcher() -> dict:
        """Give console templates the tenant links point to, and the open model (switching keeps it)."""
        def switch_model() -> str:
            endpoint = (request.endpoint or "").split(".", 1)[0]
            return endpoint if endpoint in TENANT_VIEW_MODELS else ""

        return {"menu_tenant": menu_tenant_slug, "switch_model": switch_model}
