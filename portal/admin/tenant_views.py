"""The tenant pages: Users, Roles, Products, and a tenant overview, all under /t/<tenant>/admin/."""

from typing import Any

from flask import current_app, flash
from flask_admin import BaseView, expose
from flask_admin.actions import action
from flask_login import current_user
from sqlalchemy import func, select
from wtforms import PasswordField
from wtforms.validators import Length, NumberRange, Optional, Regexp

from portal.admin.base import SecureView, TenantModelView
from portal.console_sessions import close_tenant_user_sessions
from portal.models import Product, Role, User
from portal.permissions import TENANT_MODELS, can, may_enter
from portal.tenancy_request import current_tenant, current_tenant_slug, menu_tenant_slug, tenant_db_session

EMAIL = Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="Enter an email address like name@example.com.")


class ActivationActions:
    """Bulk activate / deactivate for models with an `active` flag."""

    @action("activate", "Activate", "Activate the selected records?")
    def action_activate(self, ids: list[str]) -> None:
        flash(f"{self.set_active(ids, True)} record(s) activated.", "success")  # type: ignore[attr-defined]

    @action("deactivate", "Deactivate", "Deactivate the selected records?")
    def action_deactivate(self, ids: list[str]) -> None:
        flash(f"{self.set_active(ids, False)} record(s) deactivated.", "success")  # type: ignore[attr-defined]


class UserView(ActivationActions, TenantModelView):
    grant_model = "users"
    column_list = ["email", "full_name", "active", "roles", "created_at", "last_login_at"]
    column_details_list = column_list
    column_export_list = ["id", "email", "full_name", "active", "roles", "created_at", "last_login_at"]
    column_searchable_list = ["email", "full_name"]
    column_filters = ["active", "email", "created_at", "roles.name"]
    column_sortable_list = ["email", "full_name", "active", "created_at", "last_login_at"]
    column_default_sort = "email"
    form_columns = ["email", "full_name", "active", "roles", "password"]
    form_extra_fields = {"password": PasswordField(
        "Password", validators=[Optional(), Length(min=8, max=1024)],
        description="Write-only: leave blank to keep the current password.")}
    form_args = {"email": {"validators": [EMAIL]}}
    form_ajax_refs = {"roles": {"fields": ["name"], "page_size": 10}}

    def on_model_change(self, form: Any, model: User, is_created: bool) -> None:
        if form.password.data:
            model.set_password(form.password.data)
        model.email = model.email.strip().lower()
        super().on_model_change(form, model, is_created)

    def _end_sessions(self, user_id: int) -> None:
        close_tenant_user_sessions(current_app.extensions["tenancy"].control_engine, current_tenant_slug(), user_id)

    def after_model_change(self, form: Any, model: User, is_created: bool) -> None:
        super().after_model_change(form, model, is_created)
        if not is_created and (form.password.data or not model.active):
            # A new password or deactivation signs the user out of every session, for good:
            # reactivating the account does not bring the old cookies back.
            self._end_sessions(model.id)

    def after_model_delete(self, model: User) -> None:
        super().after_model_delete(model)
        self._end_sessions(model.id)  # the id may be reused (SQLite): no session may pass to its next owner

    def set_active(self, ids: list[str], value: bool) -> int:
        changed = super().set_active(ids, value)
        if not value:
            for user_id in (int(i) for i in ids if i.isdigit()):
                self._end_sessions(user_id)
        return changed


class RoleView(TenantModelView):
    grant_model = "roles"
    column_list = ["name", "description", "console_access"]
    column_details_list = ["name", "description", "console_access", "users"]
    column_export_list = ["id", "name", "description", "console_access"]
    column_searchable_list = ["name", "description"]
    column_filters = ["name", "console_access"]
    column_sortable_list = ["name", "console_access"]
    column_default_sort = "name"
    form_columns = ["name", "description", "console_access"]
    column_descriptions = {"console_access": "Users with this role administer this tenant's console."}
    action_rights = {"delete": "delete"}

    @property
    def _details_columns(self) -> list:
        # A role's members are users: shown only to those who may view this tenant's users.
        if can(current_user, menu_tenant_slug(), "users", "view"):
            return self._all_details_columns
        return [(name, label) for name, label in self._all_details_columns if name != "users"]

    @_details_columns.setter
    def _details_columns(self, columns: list) -> None:
        self._all_details_columns = columns


class ProductView(ActivationActions, TenantModelView):
    grant_model = "products"
    column_list = ["name", "sku", "price", "stock", "active", "created_at"]
    column_details_list = column_list
    column_export_list = ["id", "name", "sku", "price", "stock", "active", "created_at"]
    column_searchable_list = ["name", "sku"]
    column_filters = ["active", "price", "stock", "created_at"]
    column_sortable_list = ["name", "sku", "price", "stock", "active", "created_at"]
    column_default_sort = "name"
    column_editable_list = ["stock", "active"]
    form_columns = ["name", "sku", "price", "stock", "active"]
    form_args = {
        "price": {"validators": [NumberRange(min=0, message="The price cannot be negative.")]},
        "stock": {"validators": [NumberRange(min=0, message="The stock cannot be negative.")]},
    }


def tenant_counts(session: Any) -> dict[str, int]:
    """Return the row counts of the tenant tables, in one statement."""
    row = session.execute(select(
        select(func.count()).select_from(User).scalar_subquery(),
        select(func.count()).select_from(Role).scalar_subquery(),
        select(func.count()).select_from(Product).scalar_subquery(),
    )).one()
    return dict(zip(TENANT_MODELS, row, strict=True))


class TenantHomeView(SecureView, BaseView):
    """The overview page of one tenant: counts and links."""

    def is_accessible(self) -> bool:
        slug = menu_tenant_slug()
        return current_user.is_authenticated and slug is not None and may_enter(current_user, slug)

    @expose("/")
    def index(self) -> str:
        slug = current_tenant_slug()
        counts = tenant_counts(tenant_db_session())
        models = [(m, counts[m]) for m in TENANT_MODELS if can(current_user, slug, m, "view")]
        return self.render("admin/tenant_home.html", tenant=current_tenant(), models=models)
