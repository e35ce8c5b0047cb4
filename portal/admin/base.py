"""The console's base views: who may open them, and how tenant views bind and audit."""

import re
from typing import Any, ClassVar

from flask import abort, current_app, g, has_request_context, redirect, request
from flask_admin import Admin
from flask_admin.contrib.sqla import ModelView
from flask_admin.menu import MenuView
from flask_login import current_user
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from portal import audit
from portal.admin.bulk_delete import ConfirmedBulkDelete
from portal.admin.formatting import DETAIL_FORMATTERS, LIST_FORMATTERS
from portal.admin.row_actions import fast_row_actions
from portal.admin.row_urls import cached_row_url
from portal.auth import login_url_for_here
from portal.permissions import can, can_control
from portal.quarantine import quarantine_state
from portal.tenancy_request import TenantSessionProxy, current_tenant_slug, menu_tenant_slug

# A spreadsheet may split a cell on any of these (its separator is a locale setting), and then
# evaluates every piece that starts with = + - @ (after blanks or a quote).
FORMULA_AFTER_SEPARATOR = re.compile(r"""(^|[;,\t|\r\n])(\s*["']?)(?=[=+\-@])""")


def neutralise_cell(value: Any) -> Any:
    """Defuse spreadsheet formulas: each piece of a text cell that starts one gets a leading quote."""
    if not isinstance(value, str):
        return value
    value = FORMULA_AFTER_SEPARATOR.sub(lambda m: f"{m.group(1)}{m.group(2)}'", value)
    return "'" + value if value.startswith(("\t", "\r")) else value


class ConsoleAdmin(Admin):
    """Admin whose menu links are built per request (the tenant in a link changes)."""

    def _add_view_to_menu(self, view: Any) -> None:
        # Flask-Admin caches a menu item's URL on first use; with the tenant in the URL that
        # cached link would send every later visitor to the first visitor's tenant.
        self.add_menu_item(MenuView(view.name, view, cache=False), view.category)


class SecureView:
    """Mixin: anonymous visitors go to the sign-in page, signed-in ones without rights get 403."""

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return redirect(login_url_for_here())
        abort(403)


MAX_PAGE = 100_000  # beyond any real list; larger numbers overflow the database's OFFSET
PAGE_MARK = 987_654_321  # a page number no link holds otherwise: put in once, replaced per page link
MAX_LOOKUP_OFFSET = 100_000
MAX_LOOKUP_LIMIT = 100

# The grant action each Flask-Admin endpoint needs beyond "view".
ENDPOINT_ACTIONS = {"create_view": "add", "edit_view": "change", "ajax_update": "change", "delete_view": "delete"}


class GrantedModelView(SecureView, ModelView):
    """A ModelView whose rights come from grants; refusals are 403, not silent redirects."""

    grant_model: ClassVar[str]
    action_rights: ClassVar[dict[str, str]] = {"delete": "delete"}
    can_view_details = True
    column_type_formatters = LIST_FORMATTERS
    column_type_formatters_detail = DETAIL_FORMATTERS
    page_size = 20
    can_set_page_size = True

    def allowed(self, action: str) -> bool:
        """Return whether the signed-in principal may do `action` here."""
        raise NotImplementedError

    def _right(self, action: str) -> bool:
        # Templates ask can_edit / can_delete per row: decide once per request and view.
        rights = g.setdefault("console_rights", {})
        key = (self.endpoint, action)
        if key not in rights:
            rights[key] = has_request_context() and current_user.is_authenticated and self.allowed(action)
        return rights[key]

    def is_accessible(self) -> bool:
        return has_request_context() and self._right("view")

    @property
    def can_create(self) -> bool:  # type: ignore[override]
        return self.is_accessible() and self._right("add")

    @property
    def can_edit(self) -> bool:  # type: ignore[override]
        return self.is_accessible() and self._right("change")

    @property
    def can_delete(self) -> bool:  # type: ignore[override]
        return self.is_accessible() and self._right("delete")

    def is_action_allowed(self, name: str) -> bool:
        right = self.action_rights.get(name)
        return right is not None and self._right(right) and super().is_action_allowed(name)

    def _get_list_extra_args(self) -> Any:
        args = super()._get_list_extra_args()
        args.page = min(max(args.page or 0, 0), MAX_PAGE)  # ?page=-1 or a 20-digit page: clamped
        if args.page_size is not None and args.page_size not in self.page_size_options:
            args.page_size = None
        return args

    def _handle_view(self, name: str, **kwargs: Any) -> Any:
        response = super()._handle_view(name, **kwargs)
        if response is not None:
            return response
        if name == "ajax_lookup":
            offset = request.args.get("offset", 0, type=int)
            limit = request.args.get("limit", 10, type=int)
            if not (0 <= offset <= MAX_LOOKUP_OFFSET and 0 < limit <= MAX_LOOKUP_LIMIT):
                abort(400)
        needed = ENDPOINT_ACTIONS.get(name)
        if needed and not self._right(needed):
            abort(403)
        if name == "action_view" and request.method == "POST":
            if not self.is_action_allowed(request.form.get("action", "")):
                abort(403)
        return None

    def _get_list_url(self, view_args: Any) -> str:
        # The pager's links differ in the page only: one url_for per page of links, not one per
        # link (a list of thousands of rows shows ten of them; a short list none).
        if not view_args.page or not has_request_context():
            return super()._get_list_url(view_args)
        cache = g.setdefault("list_page_urls", {})
        key = (self.endpoint, view_args.page_size, view_args.sort, view_args.sort_desc, view_args.search,
               repr(view_args.filters), repr(view_args.extra_args))
        if key not in cache:
            built = super()._get_list_url(view_args.clone(page=PAGE_MARK))
            cache[key] = built if built.count(f"page={PAGE_MARK}") == 1 else None
        if cache[key] is None:
            return super()._get_list_url(view_args)
        return cache[key].replace(f"page={PAGE_MARK}", f"page={int(view_args.page)}")

    @pass_context
    def list_cells(self, context: Context, row: Any, columns: list[tuple[str, Any]]) -> Markup:
        """Return a row's cells as Flask-Admin's list renders them (get_value, escaped), in one call per row."""
        value = self._get_list_value
        formatters, types = self.column_formatters, self.column_type_formatters
        return Markup("".join(f'<td class="col-{escape(c)}">{escape(value(context, row, c, formatters, types))}</td>'
                              for c, _ in columns))

    def get_export_value(self, model: Any, name: Any) -> Any:
        return neutralise_cell(super().get_export_value(model, name))

    def get_list_row_actions(self) -> list[Any]:
        return fast_row_actions(super().get_list_row_actions())

    def get_url(self, endpoint: str, **kwargs: Any) -> str:
        if "id" not in kwargs or not has_request_context():
            return super().get_url(endpoint, **kwargs)
        # A row's details / edit link: built once per page, the row's id put in (see row_urls).
        absolute = f"{self.endpoint}{endpoint}" if endpoint.startswith(".") else endpoint
        row_id = kwargs.pop("id")
        return cached_row_url(absolute, "id", **kwargs)(row_id)


class AuditedView:
    """Mixin for ModelViews: every add, change and delete goes to the History (audit log)."""

    grant_model: ClassVar[str]

    def audit_tenant_slug(self) -> str | None:
        """Return the tenant the entries are about (None for control-plane records)."""
        return None

    def _audit(self, action: str, obj_id: Any, label: str, changes: dict | None) -> None:
        audit.record(current_app.extensions["tenancy"].control_engine, current_user, self.audit_tenant_slug(),
                     self.grant_model, obj_id, label, action, changes)

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        g.audit_changes = None if is_created else audit.pending_changes(model)

    def after_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        if is_created:
            self._audit("add", self.get_pk_value(model), str(model), audit.snapshot(model))
            return
        changes = g.pop("audit_changes", None)
        if changes:
            self._audit("change", self.get_pk_value(model), str(model), changes)

    def on_model_delete(self, model: Any) -> None:
        g.audit_deleted = (self.get_pk_value(model), str(model), audit.snapshot(model))

    def after_model_delete(self, model: Any) -> None:
        obj_id, label, values = g.pop("audit_deleted")
        self._audit("delete", obj_id, label, values)


class TenantModelView(ConfirmedBulkDelete, AuditedView, GrantedModelView):
    """A tenant table: bound to the tenant of the URL, rights by tenant grant, every change audited."""

    can_export = True
    export_types = ["csv"]
    edit_template = "admin/tenant_edit.html"
    details_template = "admin/tenant_details.html"
    action_rights = {"delete": "delete", "activate": "change", "deactivate": "change"}

    def __init__(self, model: type, **kwargs: Any) -> None:
        super().__init__(model, TenantSessionProxy(), **kwargs)

    def allowed(self, action: str) -> bool:
        if action != "view" and quarantine_state() is not None:  # read-only until the tenant is at head
            return False
        return current_user.is_authenticated and can(current_user, menu_tenant_slug(), self.grant_model, action)

    def audit_tenant_slug(self) -> str | None:
        return current_tenant_slug()

    def get_export_name(self, export_type: str = "csv") -> str:
        return f"{current_tenant_slug()}_{super().get_export_name(export_type)}"  # acme_Products_<time>.csv

    def history_url(self, model: Any) -> str:
        """Return the History page filtered to this object."""
        history = current_app.extensions["console_history_view"]
        return history.object_url(current_tenant_slug(), self.grant_model, self.get_pk_value(model))

    def set_active(self, ids: list[str], value: bool) -> int:
        """Activate or deactivate the rows with these ids in this tenant; audit each; return how many."""
        wanted = [int(i) for i in ids if i.isdigit()]
        rows = self.session.query(self.model).filter(self.model.id.in_(wanted)).all()
        changed = []
        for row in rows:
            if row.active != value:
                row.active = value
                changed.append((row, audit.pending_changes(row)))
        self.session.commit()
        for row, changes in changed:
            self._audit("change", row.id, str(row), changes)
        return len(changed)


class ControlModelView(GrantedModelView):
    """A control-plane table: superusers, or staff with a grant for all tenants on its model."""

    def allowed(self, action: str) -> bool:
        return current_user.is_authenticated and can_control(current_user, self.grant_model, action)


class ReadOnlyControlView(ControlModelView):
    """A control-plane table the console shows but never edits (it is written by the library)."""

    can_create = False
    can_edit = False
    can_delete = False


def escaped_lines(lines: list[str]) -> Markup:
    """Join text lines for display, escaping each (never trust stored values)."""
    return Markup("<br>").join(lines)
