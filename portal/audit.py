"""History like Django's LogEntry: every console change, recorded in the control plane.

Entries say who, when, which tenant, model, object (id and label), the action, and for a
change the fields with old and new values. Secrets are never recorded: a password field
appears only as "changed".
"""

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, inspect, select

from portal.permissions import Principal
from tenants.core.clock import utcnow
from tenants.core.control_schema import audit_log, tenants

SECRET_FIELDS = frozenset({"password", "password_hash"})
SECRET_MARK = "(changed)"
UNRECORDED_FIELDS = frozenset({"account_key"})  # what sessions are bound to: no business of History
ACTIONS = ("add", "change", "delete", "upgrade")


def plain(value: Any) -> Any:
    """Return a JSON-friendly form of a column value (related objects by their label)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set):
        return sorted(str(v) for v in value)
    return str(value)


def _fields(obj: Any) -> list[str]:
    mapper = inspect(obj).mapper
    names = [a.key for a in mapper.column_attrs] + [r.key for r in mapper.relationships]
    return [name for name in names if name not in UNRECORDED_FIELDS]


def snapshot(obj: Any) -> dict[str, Any]:
    """Return every field of an ORM object, secrets left out."""
    return {name: plain(getattr(obj, name)) for name in _fields(obj) if name not in SECRET_FIELDS}


def pending_changes(obj: Any) -> dict[str, list[Any]]:
    """Return {field: [old, new]} for the unflushed changes of an ORM object; secrets only marked."""
    state = inspect(obj)
    changes: dict[str, list[Any]] = {}
    for name in _fields(obj):
        history = state.attrs[name].history
        if not history.has_changes():
            continue
        if name in SECRET_FIELDS:
            changes["password"] = [SECRET_MARK, SECRET_MARK]
            continue
        attr = state.mapper.attrs[name]
        if hasattr(attr, "direction"):  # a relationship: compare the whole collections
            old = list(history.unchanged or ()) + list(history.deleted or ())
            new = list(history.unchanged or ()) + list(history.added or ())
            changes[name] = [plain(old), plain(new)]
        else:
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if plain(old) != plain(new):
                changes[name] = [plain(old), plain(new)]
    return changes


def record(engine: Engine, principal: Principal, tenant_slug: str | None, model: str, object_id: Any,
           label: str, action: str, changes: dict[str, Any] | None = None) -> None:
    """Write one history entry."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    with engine.begin() as conn:
        # The entry belongs to this incarnation of the tenant: a slug dropped and made again gets a new key.
        tenant_key = None if tenant_slug is None else conn.execute(
            select(tenants.c.account_key).where(tenants.c.slug == tenant_slug)).scalar()
        conn.execute(insert(audit_log).values(
            at=utcnow(), staff_id=principal.id if principal.kind == "staff" else None, actor=principal.label[:254],
            tenant_slug=tenant_slug, tenant_key=tenant_key, model=model,
            object_id=None if object_id is None else str(object_id)[:64],
            object_label=label[:300], action=action,
            changes=json.dumps(changes, sort_keys=True, default=str) if changes else None,
        ))
