"""History: the audit log, read-only; each principal sees the entries of what they may view."""

import json
from typing import Any

from flask import url_for
from flask_admin.contrib.sqla.filters import FilterGreater
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import and_, false, func, or_, select

from portal.admin.base import ReadOnlyControlView, escaped_lines
from portal.admin.control_models import AuditEntry
from portal.extensions import db
from portal.permissions import TENANT_MODELS, can_control
from tenants.core.control_schema import audit_log, tenants


def _changes(view: Any, context: Any, model: AuditEntry, name: str) -> Markup | str:
    if not model.changes:
        return ""
    try:
        changes = json.loads(model.changes)
    except ValueError:
        return model.changes
    lines = []
    for field, value in sorted(changes.items()):
        if model.action == "change" and isinstance(value, list) and len(value) == 2:
            lines.append(Markup("<b>{}</b>: {} &rarr; {}").format(field, json.dumps(value[0]), json.dumps(value[1])))
        else:
            lines.append(Markup("<b>{}</b>: {}").format(field, json.dumps(value)))
    return escaped_lines(lines)


class HistoryView(ReadOnlyControlView):
    """The audit log, read-only; each principal sees the entries of what they may view."""

    grant_model = "history"
    can_export = True
    column_list = ["at", "actor", "tenant_slug", "model", "object_id", "object_label", "action", "changes"]
    column_details_list = column_list
    column_export_list = column_list
    column_labels = {"tenant_slug": "Tenant", "object_label": "Object", "object_id": "Object id"}
    column_filters = ["tenant_slug", "model", "object_id", "action", "actor", "at",
                      FilterGreater(AuditEntry.id, "Entry number")]
    column_searchable_list = ["actor", "object_label"]
    column_sortable_list = ["at", "actor", "tenant_slug", "model", "action"]
    column_default_sort = ("at", True)
    column_formatters = {"changes": _changes}
    column_formatters_export = {}
    named_filter_urls = True

    def allowed(self, action: str) -> bool:
        return current_user.is_authenticated and action == "view"

    def _visible(self) -> Any:
        principal, c = current_user, AuditEntry.__table__.c
        if principal.kind == "tenant":  # this incarnation of the tenant only, not a dropped namesake's
            return and_(c.tenant_slug == principal.tenant_slug, c.tenant_key == principal.tenant_key)
        if principal.is_superuser:
            return None
        if can_control(principal, "history", "view"):
            return c.tenant_slug.is_not(None)
        terms = [and_(c.model == grant.model, c.tenant_slug.is_not(None) if grant.tenant_slug is None
                      else c.tenant_slug == grant.tenant_slug)
                 for grant in principal.grants if grant.model in TENANT_MODELS and grant.allows("view")]
        return or_(*terms) if terms else false()

    def get_query(self) -> Any:
        visible = self._visible()
        query = super().get_query()
        return query if visible is None else query.filter(visible)

    def get_count_query(self) -> Any:
        visible = self._visible()
        query = super().get_count_query()
        return query if visible is None else query.filter(visible)

    def get_one(self, id: Any) -> Any:
        visible = self._visible()
        query = self.get_query() if visible is not None else super().get_query()
        return query.filter(AuditEntry.id == id).first() if str(id).isdigit() else None

    def object_url(self, tenant_slug: str | None, model: str, object_id: Any) -> str:
        """Return this page filtered to one object's entries, and only this object's (see history_start)."""
        return url_for(f"{self.endpoint}.index_view", flt0_tenant_equals=tenant_slug or "",
                       flt1_model_equals=model, flt2_object_id_equals=str(object_id),
                       flt3_entry_number_greater_than=history_start(tenant_slug, model, object_id))


def history_start(tenant_slug: str | None, model: str, object_id: Any) -> int:
    """Return the number of the entry before the current object's first one.

    Ids are reused (SQLite reuses a deleted row's id; a dropped tenant's slug can be made again),
    so the entries under one (tenant, model, id) may belong to several objects in turn. The
    current object's begin after the last entry that cannot be its own: a delete, or an entry of
    another incarnation of the tenant, and at its own "add" entry when the console made it.
    """
    c = audit_log.c
    same = and_(c.tenant_slug == tenant_slug, c.model == model, c.object_id == str(object_id)[:64])
    key = select(tenants.c.account_key).where(tenants.c.slug == tenant_slug).scalar_subquery()
    foreign = or_(c.action == "delete", c.tenant_key.is_distinct_from(key))
    before = db.session.execute(select(func.max(c.id)).where(same, foreign)).scalar() or 0
    added = db.session.execute(select(func.max(c.id)).where(same, c.action == "add", c.id > before,
                                                             c.tenant_key == key)).scalar()
    return added - 1 if added else before
