"""Find across tenants: a user by email, or a product by SKU or name, in every tenant one may view."""

import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError

from portal.admin.base import SecureView
from portal.admin.dashboard import visible_tenants
from portal.models import Product, User
from portal.permissions import can
from tenants.core.binding import tenant_session
from tenants.core.errors import TenantError
from tenants.core.tenancy import Tenancy

log = logging.getLogger(__name__)

KINDS = {"user": ("users", "user"), "product": ("products", "product")}
PER_TENANT = 20
MAX_RESULTS = 200


@dataclass(frozen=True)
class Found:
    """One match: the tenant, what was found, and where to open it."""

    tenant_slug: str
    tenant_name: str
    label: str
    url: str


def like_pattern(text: str) -> str:
    """Return a LIKE pattern matching `text` anywhere, with its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _query(kind: str, text: str) -> Any:
    pattern = like_pattern(text.lower())
    if kind == "user":
        return select(User).where(User.email.ilike(pattern, escape="\\")).order_by(User.email).limit(PER_TENANT)
    return (select(Product).where(or_(Product.sku.ilike(pattern, escape="\\"),
                                      Product.name.ilike(pattern, escape="\\")))
            .order_by(Product.name).limit(PER_TENANT))


def find_across(tenancy: Tenancy, principal: Any, kind: str, text: str) -> tuple[list[Found], list[str]]:
    """Search every tenant `principal` may view `kind` in; return the matches and the tenants that could not be read."""
    model, endpoint = KINDS[kind]
    found: list[Found] = []
    unreadable: list[str] = []
    for tenant in visible_tenants(tenancy, principal):
        if tenant.status != "active" or not can(principal, tenant.slug, model, "view"):
            continue
        try:
            with tenant_session(tenancy.storage(tenant)) as session:
                matches = [(str(obj), obj.id) for obj in session.scalars(_query(kind, text))]
        except (SQLAlchemyError, TenantError) as e:  # one broken tenant must not hide every other's matches
            log.warning("find: tenant %s could not be read: %s", tenant.slug, str(e).splitlines()[0][:300])
            unreadable.append(tenant.slug)
            continue
        found += [Found(tenant.slug, tenant.display_name, label,
                        url_for(f"{endpoint}.details_view", tenant=tenant.slug, id=obj_id))
                  for label, obj_id in matches]
        if len(found) >= MAX_RESULTS:
            break
    return found[:MAX_RESULTS], unreadable


class FindView(SecureView, BaseView):
    """Look something up in every tenant at once."""

    def is_accessible(self) -> bool:
        return current_user.is_authenticated

    @expose("/")
    def index(self) -> str:
        kind = request.args.get("kind", "user")
        kind = kind if kind in KINDS else "user"
        text = request.args.get("q", "").strip()[:200]
        results, unreadable = find_across(current_app.extensions["tenancy"], current_user, kind, text) if text else (
            None, [])
        return self.render("admin/find.html", kind=kind, text=text, results=results, limit=MAX_RESULTS,
                           unreadable=unreadable)
