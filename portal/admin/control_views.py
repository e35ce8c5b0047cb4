"""Control-plane pages: Tenants (with the upgrade action), Migration runs, Staff & grants, History."""

from typing import Any

from flask import abort, current_app, flash, g, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.security import generate_password_hash
from wtforms import PasswordField, SelectChoice, SelectField
from wtforms.validators import Length, Optional, ValidationError

from portal import audit
from portal.admin.base import AuditedView, ControlModelView, ReadOnlyControlView, escaped_lines
from portal.admin.control_models import MigrationRun, StaffGrant, StaffMember, TenantRecord
from portal.admin.formatting import human_duration, human_time
from portal.admin.grant_tenant import EVERY_TENANT, EVERY_TENANT_LABEL, GrantTenantField, grant_tenant
from portal.admin.tenant_actions import upgrade_selected
from portal.admin.tenant_lifecycle import TenantLifecycle, manage_buttons
from portal.console_sessions import close_staff_sessions
from portal.extensions import db
from portal.permissions import CONTROL_MODELS, TENANT_MODELS
from portal.quarantine import chain_head
from portal.tenant_scope import search_tenants
from tenants.core.clock import utcnow
from tenants.core.ledger import last_results
from tenants.core.registry import Tenant
from tenants.safety.drift import check_drift

FAILED_RESULTS = ("failed", "timeout", "unreachable")


def pending_count(tenancy: Any, revision: str | None) -> int:
    """Return how many revisions of the tenant chain lie between `revision` and head."""
    heads = tenancy.heads()
    if len(heads) != 1:
        return 0  # unmerged heads: no single target to count towards (the head column names them)
    if revision == heads[0]:
        return 0
    return len(list(tenancy.scripts.iterate_revisions(heads[0], revision or "base")))


def _fleet_facts() -> dict[str, Any]:
    if "fleet_facts" not in g:
        tenancy = current_app.extensions["tenancy"]
        # The rows of this page only (TenantsView.get_list), not every result of every run.
        g.fleet_facts = {"head": chain_head(tenancy),
                         "last": last_results(tenancy.control_engine, slugs=g.get("tenants_page_slugs", []))}
    return g.fleet_facts


STORAGE_LABELS_KEPT = 10_000  # labels remembered per process; beyond that the memo starts again


def _storage_label(model: TenantRecord) -> str:
    # A pure function of the slug and the tenant's own URL (URL parsing and masking is most of
    # its cost): remembered per process, so a page's rows do not redo it on every load.
    labels = current_app.extensions.setdefault("tenant_storage_labels", {})
    key = (model.slug, model.database_url)
    if key not in labels:
        if len(labels) >= STORAGE_LABELS_KEPT:
            labels.clear()
        tenancy = current_app.extensions["tenancy"]
        tenant = Tenant(model.slug, model.display_name, model.status, model.status_reason, model.database_url,
                        model.created_at)
        labels[key] = tenancy.storage(tenant).describe()
    return labels[key]


def _pending(view: Any, context: Any, model: TenantRecord, name: str) -> Any:
    count = pending_count(current_app.extensions["tenancy"], model.revision)
    return Markup('<span class="badge badge-warning">{}</span>').format(count) if count else "0"


def _last_result(view: Any, context: Any, model: TenantRecord, name: str) -> Any:
    g.setdefault("tenants_page_slugs", [model.slug])  # a details page: its one tenant
    last = _fleet_facts()["last"].get(model.slug)
    if last is None:
        return "-"
    text = f"{last['status']} ({human_time(last['started_at'])})"
    if last["status"] in FAILED_RESULTS:
        return Markup('<span class="text-danger" title="{}">{}</span>').format(last["error"] or "", text)
    return text


def _drift(view: Any, context: Any, model: TenantRecord, name: str) -> Any:
    """The tenant's live schema against its revision (computed on the details page only: it is not cheap)."""
    (report,) = check_drift(current_app.extensions["tenancy"], [model.slug])
    if not report.drifted:
        return Markup('<span class="text-success">no drift</span>')
    lines = [report.error] if report.error else [f"{d.kind} {d.table or ''} {d.name or ''}: {d.detail}"
                                                 for d in report.differences]
    return Markup('<span class="text-danger">drifted</span>') + escaped_lines(lines)


class TenantsView(TenantLifecycle, ReadOnlyControlView):
    grant_model = "tenants"
    list_template = "admin/tenants_list.html"
    column_list = ["slug", "display_name", "status", "revision", "pending", "last_result", "database", "manage"]
    column_details_list = ["slug", "display_name", "status", "status_reason", "revision", "pending", "last_result",
                           "drift", "database", "created_at", "updated_at"]
    column_labels = {"revision": "Current revision", "display_name": "Name"}
    column_searchable_list = ["slug", "display_name"]
    column_filters = ["status"]
    column_sortable_list = ["slug", "display_name", "status"]
    column_default_sort = "slug"
    column_formatters = {"pending": _pending, "last_result": _last_result, "drift": _drift,
                         "database": lambda v, c, m, n: _storage_label(m), "manage": manage_buttons}
    column_descriptions = {"pending": "Revisions between the current one and head."}
    action_rights = {"upgrade": "change", "drift": "view"}

    def get_list(self, *args: Any, **kwargs: Any) -> Any:
        count, rows = super().get_list(*args, **kwargs)
        g.tenants_page_slugs = [row.slug for row in rows]
        return count, rows

    @action("drift", "Check drift of selected", None)
    def action_drift(self, ids: list[str]) -> None:
        wanted = [int(i) for i in ids if i.isdigit()]
        slugs = db.session.scalars(select(TenantRecord.slug).where(TenantRecord.id.in_(wanted))
                                   .order_by(TenantRecord.slug)).all()
        for report in check_drift(current_app.extensions["tenancy"], list(slugs)):
            if not report.drifted:
                flash(f"{report.slug}: no drift", "success")
                continue
            found = report.error or "; ".join(f"{d.kind} {d.table or ''} {d.name or ''}".strip()
                                              for d in report.differences)
            flash(f"{report.slug}: drifted: {found}", "error")

    @expose("/upgrade/", methods=["POST"])
    def upgrade_view(self) -> Any:
        """Upgrade one tenant to head (the quarantine page's button), then go back to it."""
        if not self._right("change"):
            abort(403)
        slug = request.form.get("slug", "")
        if not slug or current_app.extensions["tenancy"].registry.find(slug) is None:
            abort(404)
        self.upgrade_slugs([slug])
        return redirect(url_for("tenant_home.index", tenant=slug))

    def upgrade_slugs(self, slugs: list[str]) -> None:
        """Upgrade these tenants to head as the CLI does; flash and record each outcome."""
        tenancy = current_app.extensions["tenancy"]
        for report in upgrade_selected(tenancy, slugs, started_by=f"console:{current_user.email}"):
            flash(f"{report.slug}: {report.message}", "success" if report.ok else "error")
            audit.record(tenancy.control_engine, current_user, report.slug, "tenants", report.slug, report.slug,
                         "upgrade", {"result": "ok" if report.ok else "failed", "detail": report.message})

    @action("upgrade", "Upgrade selected to head", "Upgrade the selected tenants to the head revision?")
    def action_upgrade(self, ids: list[str]) -> None:
        wanted = [int(i) for i in ids if i.isdigit()]
        slugs = db.session.scalars(select(TenantRecord.slug).where(TenantRecord.id.in_(wanted))
                                   .order_by(TenantRecord.slug)).all()
        self.upgrade_slugs(list(slugs))


def _run_results(view: Any, context: Any, model: MigrationRun, name: str) -> Markup:
    rows = [Markup("<tr><td>{}</td><td>{}</td><td>{} &rarr; {}</td><td>{}</td><td>{}</td></tr>").format(
        r.tenant_slug, r.status, r.from_revision or "base", r.to_revision or "-",
        human_duration(r.duration_ms), r.error or "") for r in model.results]
    head = Markup("<tr><th>tenant</th><th>status</th><th>revisions</th><th>time</th><th>error</th></tr>")
    return Markup('<table class="table table-sm">{}{}</table>').format(head, Markup("").join(rows))


class RunsView(ReadOnlyControlView):
    grant_model = "runs"
    column_list = ["started_at", "kind", "target", "status", "started_by", "tenants_total", "tenants_ok",
                   "tenants_failed", "tenants_busy", "finished_at"]
    column_details_list = ["id", *column_list, "host", "pid", "options", "results"]
    column_labels = {"tenants_total": "Tenants", "tenants_ok": "OK", "tenants_failed": "Failed",
                     "tenants_busy": "Busy"}
    column_filters = ["kind", "status", "started_at", "started_by"]
    column_sortable_list = ["started_at", "kind", "status", "finished_at"]
    column_default_sort = ("started_at", True)
    column_formatters_detail = {"results": _run_results}


class ResultsView(ReadOnlyControlView):
    grant_model = "runs"
    column_list = ["started_at", "tenant_slug", "status", "from_revision", "to_revision", "duration_ms", "error",
                   "run_id"]
    column_labels = {"tenant_slug": "Tenant", "run_id": "Run", "duration_ms": "Time"}
    column_formatters = {"duration_ms": lambda v, c, m, n: human_duration(m.duration_ms)}
    column_filters = ["tenant_slug", "status", "run_id", "started_at"]
    column_sortable_list = ["started_at", "tenant_slug", "status", "duration_ms"]
    column_default_sort = ("started_at", True)
    named_filter_urls = True


GRANT_MODEL_CHOICES = [SelectChoice(m) for m in (*TENANT_MODELS, *CONTROL_MODELS)]


def grant_lines(conn: Any, staff_id: int) -> list[str]:
    """Return a staff member's stored grants as History shows them."""
    rows = conn.execute(select(StaffGrant.__table__).where(StaffGrant.__table__.c.staff_id == staff_id))
    return sorted(str(StaffGrant(**row._mapping)) for row in rows)


class StaffView(AuditedView, ControlModelView):
    """Staff accounts and their grants: superusers only (a grant to edit staff would be a grant of everything)."""

    grant_model = "staff"
    column_list = ["email", "full_name", "active", "is_superuser", "grants", "created_at", "last_login_at"]
    column_details_list = column_list
    column_searchable_list = ["email", "full_name"]
    column_filters = ["active", "is_superuser"]
    column_sortable_list = ["email", "full_name", "active", "is_superuser", "last_login_at"]
    column_default_sort = "email"
    column_export_list = ["email", "full_name", "active", "is_superuser", "created_at", "last_login_at"]
    can_export = True
    form_columns = ["email", "full_name", "active", "is_superuser", "password"]
    form_extra_fields = {"password": PasswordField(
        "Password", validators=[Optional(), Length(min=8, max=1024)],
        description="Write-only: required for a new account, leave blank to keep the current one.")}
    inline_models = [(StaffGrant, {
        "form_columns": ["id", "tenant_slug", "model", "can_view", "can_add", "can_change", "can_delete"],
        "form_overrides": {"model": SelectField, "tenant_slug": GrantTenantField},
        "form_args": {"model": {"choices": GRANT_MODEL_CHOICES},
                      "tenant_slug": {"label": "Tenant",
                                      "description": "* = every tenant (control models need *); type to search."}},
    })]

    @expose("/grant-tenants/")
    def grant_tenants(self) -> Any:
        """Answer the grant editor's select2: `*` first, then registered tenants whose slug or name contains `query`."""
        if not self._right("change"):
            abort(403)
        term, offset = request.args.get("query", ""), request.args.get("offset", 0)
        found = search_tenants(current_app.extensions["tenancy"].control_engine, current_user, term, offset,
                               request.args.get("limit", 10), active_only=False)
        first = [[EVERY_TENANT, EVERY_TENANT_LABEL]] if str(offset) in ("", "0") and (
            not term.strip() or term.strip() in EVERY_TENANT_LABEL) else []
        return jsonify(first + [[slug, text] for slug, text in found])

    def allowed(self, action: str) -> bool:
        return current_user.is_authenticated and current_user.kind == "staff" and current_user.is_superuser

    def on_model_change(self, form: Any, model: StaffMember, is_created: bool) -> None:
        model.email = (model.email or "").strip().lower()
        for grant in model.grants:
            grant.tenant_slug = grant_tenant(grant.tenant_slug)
            if grant.model in CONTROL_MODELS and grant.tenant_slug is not None:
                raise ValidationError(f"{grant.model} is a control-plane model: grant it with tenant '*'.")
        if form.password.data:
            model.password_hash = generate_password_hash(form.password.data)
        elif is_created:
            raise ValidationError("A new staff member needs a password.")
        if is_created:
            model.created_at = utcnow()
        super().on_model_change(form, model, is_created)
        if not is_created:  # the grants as stored against the grants as saved: every change is in History
            with current_app.extensions["tenancy"].control_engine.connect() as conn:
                before = grant_lines(conn, model.id)
            after = sorted(str(grant) for grant in model.grants if grant not in db.session.deleted)
            changes = {k: v for k, v in (g.audit_changes or {}).items() if k != "grants"}
            if before != after:
                changes["grants"] = [before, after]
            g.audit_changes = changes

    def after_model_change(self, form: Any, model: StaffMember, is_created: bool) -> None:
        super().after_model_change(form, model, is_created)
        if not is_created and (form.password.data or not model.active):
            close_staff_sessions(current_app.extensions["tenancy"].control_engine, model.id)

    def after_model_delete(self, model: StaffMember) -> None:
        super().after_model_delete(model)
        close_staff_sessions(current_app.extensions["tenancy"].control_engine, model.id)
