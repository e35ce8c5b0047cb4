"""Creating, suspending, resuming and dropping a tenant from the Tenants view: the CLI's library calls.

Superusers and staff with `tenants:change` may do it. Creating runs create_tenant (the same
all-or-nothing provisioning and upgrade to head as `create-tenant`); dropping runs drop_tenant
after the slug has been typed again, and ends the tenant's console sessions. Each is recorded
in History.
"""

from typing import Any

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from portal import audit
from portal.admin.row_urls import cached_row_url
from portal.console_sessions import close_tenant_sessions
from portal.permissions import can_control
from tenants.core.errors import TenantError
from tenants.fleet.create import create_tenant
from tenants.migrate.lifecycle import drop_tenant


class CreateTenantForm(FlaskForm):
    slug = StringField("Slug", validators=[DataRequired(), Length(max=40)],
                       description="2-40 characters: a lower-case letter, then lower-case letters, digits or _.")
    name = StringField("Name", validators=[Length(max=200)])


class DropTenantForm(FlaskForm):
    confirm = StringField("Type the tenant's slug to drop it and ALL its data", validators=[DataRequired()])


def _require_change() -> None:
    if not can_control(current_user, "tenants", "change"):
        abort(403)


def _tenant_or_404(slug: str) -> Any:
    tenant = current_app.extensions["tenancy"].registry.find(slug) if slug else None
    if tenant is None:
        abort(404)
    return tenant


def _record(slug: str, action: str, changes: dict) -> None:
    audit.record(current_app.extensions["tenancy"].control_engine, current_user, slug, "tenants", slug, slug,
                 action, changes)


class TenantLifecycle:
    """Mixin for the Tenants view: create, suspend, resume and drop pages."""

    @expose("/create/", methods=["GET", "POST"])
    def create_view_page(self) -> Any:
        _require_change()
        form = CreateTenantForm()
        if form.validate_on_submit():
            slug = form.slug.data.strip()
            try:
                tenant = create_tenant(current_app.extensions["tenancy"], slug, form.name.data.strip() or None,
                                       started_by=f"console:{current_user.email}")
            except TenantError as e:
                form.slug.errors = [*form.slug.errors, str(e).splitlines()[0]]
            else:
                _record(tenant.slug, "add", {"name": tenant.display_name, "status": tenant.status})
                flash(f"Tenant {tenant.display_name} ({tenant.slug}) created at the head revision.", "success")
                return redirect(url_for(".index_view"))
        return self.render("admin/tenant_create.html", form=form)  # type: ignore[attr-defined]

    @expose("/status/", methods=["POST"])
    def status_view_page(self) -> Any:
        _require_change()
        tenant = _tenant_or_404(request.form.get("slug", ""))
        wanted = {"suspend": "suspended", "resume": "active"}.get(request.form.get("do", ""))
        allowed_from = {"suspended": "active", "active": "suspended"}
        if wanted is None or tenant.status != allowed_from[wanted]:
            abort(400)
        current_app.extensions["tenancy"].registry.set_status(tenant.slug, wanted, f"by {current_user.email}")
        if wanted == "suspended":
            close_tenant_sessions(current_app.extensions["tenancy"].control_engine, tenant.slug)
        _record(tenant.slug, "change", {"status": [tenant.status, wanted]})
        flash(f"Tenant {tenant.display_name} ({tenant.slug}) is {wanted}.", "success")
        return redirect(url_for(".index_view"))

    @expose("/drop/", methods=["GET", "POST"])
    def drop_view_page(self) -> Any:
        _require_change()
        tenant = _tenant_or_404(request.values.get("slug", ""))
        form = DropTenantForm()
        if form.validate_on_submit():
            if form.confirm.data.strip() != tenant.slug:
                form.confirm.errors = [*form.confirm.errors, f"Type {tenant.slug} exactly to drop this tenant."]
            else:
                tenancy = current_app.extensions["tenancy"]
                try:
                    drop_tenant(tenancy, tenant.slug)
                except TenantError as e:
                    flash(f"Could not drop {tenant.slug}: {str(e).splitlines()[0]}", "error")
                    return redirect(url_for(".index_view"))
                close_tenant_sessions(tenancy.control_engine, tenant.slug)
                _record(tenant.slug, "delete", {"name": tenant.display_name, "status": tenant.status})
                flash(f"Tenant {tenant.display_name} ({tenant.slug}) and all its data were dropped.", "success")
                return redirect(url_for(".index_view"))
        return self.render("admin/tenant_drop.html", form=form, tenant=tenant)  # type: ignore[attr-defined]


def _manage_parts(view: Any) -> dict[str, Any] | None:
    """What every row's buttons share, decided once per request: the right, the token, the links."""
    if "tenant_manage_parts" not in g:
        g.tenant_manage_parts = {
            "form": (f'<form method="post" action="{escape(url_for(f"{view.endpoint}.status_view_page"))}" '
                     f'class="d-inline"><input type="hidden" name="csrf_token" value="{escape(generate_csrf())}">'),
            "drop_url": cached_row_url(f"{view.endpoint}.drop_view_page", "slug"),
        } if can_control(current_user, "tenants", "change") else None
    return g.tenant_manage_parts


def manage_buttons(view: Any, context: Any, model: Any, name: str) -> Markup | str:
    """The Tenants list's suspend / resume / drop buttons, for those who may change tenants."""
    parts = _manage_parts(view)
    if parts is None:
        return ""
    # Plain escaped f-strings: Markup.format was most of this column's cost, once per row.
    do = {"active": "suspend", "suspended": "resume"}.get(model.status)
    form = (f'{parts["form"]}<input type="hidden" name="slug" value="{escape(model.slug)}">'
            f'<input type="hidden" name="do" value="{do}"><button type="submit" '
            f'class="btn btn-sm btn-outline-secondary">{do.capitalize()}</button></form> ') if do else ""
    return Markup(f'{form}<a class="btn btn-sm btn-outline-danger" href="{escape(parts["drop_url"](model.slug))}">'
                  "Drop</a>")
