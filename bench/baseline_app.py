"""The baseline for bench/console_load.py: a plain single-tenant Flask-Admin app, same Product view.

No tenancy at all: one database schema bound once (Flask-SQLAlchemy's session), Flask-Login
with the staff row loaded per request, CSRFProtect, the same list columns, filters, search,
sorting, inline editing, export and actions as the console's Products view.
"""

import os

from flask import Flask, redirect
from flask_admin import Admin
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.theme import Bootstrap4Theme
from flask_login import LoginManager, UserMixin, current_user, login_user
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import create_engine, select

from portal.admin.tenant_views import ProductView
from portal.models import Product
from tenants.core.control_schema import staff
from tenants.core.engines import driver_url

COPIED = ["column_list", "column_details_list", "column_export_list", "column_searchable_list", "column_filters",
          "column_sortable_list", "column_default_sort", "column_editable_list", "form_columns", "form_args",
          "can_export", "export_types", "can_view_details", "page_size", "can_set_page_size"]


class BaselineProductView(ModelView):
    def is_accessible(self) -> bool:
        return current_user.is_authenticated

    @action("activate", "Activate", "Activate the selected records?")
    def action_activate(self, ids: list[str]) -> None:
        pass

    @action("deactivate", "Deactivate", "Deactivate the selected records?")
    def action_deactivate(self, ids: list[str]) -> None:
        pass


for _name in COPIED:
    setattr(BaselineProductView, _name, getattr(ProductView, _name))


class StaffUser(UserMixin):
    def __init__(self, staff_id: int) -> None:
        self.id = staff_id


def create() -> Flask:
    """Build the baseline app from BENCH_TENANT_URL / BENCH_TENANT_SCHEMA / DATABASE_URL."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    app.config["SQLALCHEMY_DATABASE_URI"] = driver_url(os.environ["BENCH_TENANT_URL"])
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_pre_ping": True, "execution_options": {"schema_translate_map": {None: os.environ["BENCH_TENANT_SCHEMA"]}}}
    db = SQLAlchemy()
    db.init_app(app)
    CSRFProtect(app)
    control = create_engine(driver_url(os.environ["DATABASE_URL"]), pool_pre_ping=True)
    login_manager = LoginManager(app)

    @login_manager.user_loader
    def load(user_id: str) -> StaffUser | None:
        with control.connect() as conn:
            found = conn.execute(select(staff.c.id).where(staff.c.id == int(user_id), staff.c.active)).scalar()
        return StaffUser(found) if found else None

    @app.route("/bench-login")
    def bench_login():  # type: ignore[no-untyped-def]
        login_user(StaffUser(1))
        return redirect("/admin/")

    admin = Admin(app, name="Baseline", url="/admin", theme=Bootstrap4Theme(fluid=True))
    admin.add_view(BaselineProductView(Product, db, name="Products", endpoint="product"))
    return app
