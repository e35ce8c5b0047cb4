"""Bulk delete as Django admin does it: a page listing what will be deleted and what it affects, then confirm."""

from typing import Any

from flask import request
from flask_admin.actions import action
from flask_admin.contrib.sqla import tools
from flask_login import current_user

from portal.permissions import can
from portal.tenancy_request import current_tenant_slug


class ConfirmedBulkDelete:
    """Mixin for tenant ModelViews: "Delete" on selected rows first shows what it will do."""

    @action("delete", "Delete", None)
    def action_delete(self, ids: list[str]) -> Any:
        if request.form.get("confirmed") == "1":
            return super().action_delete(ids)  # type: ignore[misc]
        objects = tools.get_query_for_ids(self.get_query(), self.model, ids).all()  # type: ignore[attr-defined]
        return self.render("admin/bulk_delete.html", objects=objects,  # type: ignore[attr-defined]
                           affected=[(obj, self.delete_affects(obj)) for obj in objects])

    def delete_affects(self, obj: Any) -> list[str]:
        """Return what else deleting `obj` changes, as lines the signed-in person may read."""
        users = getattr(obj, "users", None)
        if users is None:
            return []
        if can(current_user, current_tenant_slug(), "users", "view"):
            return [f"{user} loses this role" for user in users]
        return [f"{len(users)} user(s) lose this role"] if users else []
