"""Find across tenants: a user by email, or a product by SKU or name, in the tenants one may view.

Each search opens one page of tenants (TENANTS_PER_SEARCH, in slug order), never the whole
fleet: the page says which tenants it searched out of how many, links to the next ones, and
offers to narrow by tenant (slug or name contains), as a Django admin list narrows by a filter.
"""

import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from portal.admin.base import SecureView
from portal.admin.dashboard import page_number
from portal.models import Product, User
from portal.permissions import can
from portal.tenant_scope import matching, scoped
from tenants.core.binding import tenant_session
from tenants.core.control_schema import tenants
from tenants.core.errors import TenantError
from tenants.core.registry import Tenant
from tenants.core.tenancy import Tenancy

log = logging.getLogger(__name__)

KINDS = {"user": ("users", "user"), "product": ("products", "product")}
PER_TENANT = 20
MAX_RESULTS = 200
TENANTS_PER_SEARCH = 25  # tenant databases one search opens, at most


@dataclass(frozen=True)
class Searched:
    """Which tenants a search covered: `first`..`last` (1-based) of `total`, and its page."""

    first: int
    last: int
    total: int
    page: int
    pages: int


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


def tenants_to_search(tenancy: Tenancy, principal: Any, model: str, narrow: str,
                      asked: Any) -> tuple[list[Tenant], Searched]:
    """Return one page of the active tenants `principal` may view `model` in (narrowed by slug or name)."""
    t = tenants.c
    query = matching(scoped(select(t.slug, t.display_name, t.status, t.status_reason, t.database_url, t.created_at)
                            .where(t.status == "active"), principal, (model,)), narrow)
    with tenancy.control_engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        pages = max(1, -(-total // TENANTS_PER_SEARCH))
        page = page_number(asked, pages)
        rows = conn.execute(query.order_by(t.slug).limit(TENANTS_PER_SEARCH)
                            .offset((page - 1) * TENANTS_PER_SEARCH)).all()
    first = (page - 1) * TENANTS_PER_SEARCH
    return [Tenant(*row) for row in rows], Searched(first + 1 if rows else 0, first + len(rows), total, page, pages)


def find_across(tenancy: Tenancy, principal: Any, kind: str, text: str, narrow: str = "",
                page: Any = 1) -> tuple[list[Found], list[str], Searched]:
    """Search one page of the tenants `principal` may view `kind` in; return matches, unreadable tenants, coverage."""
    model, endpoint = KINDS[kind]
    found: list[Found] = []
    unreadable: list[str] = []
    chosen, searched = tenants_to_search(tenancy, principal, model, narrow, page)
    for tenant in chosen:
        if not can(principal, tenant.slug, model, "view"):  # SQL narrowed the tenants; the grants decide
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
    return found[:MAX_RESULTS], unreadable, searched


class FindView(SecureView, BaseView):
    """Look something up in every tenant at once."""

    def is_accessible(self) -> bool:
        return current_user.is_authenticated

    @expose("/")
    def index(self) -> str:
        kind = request.args.get("kind", "user")
        kind = kind if kind in KINDS else "user"
        text = request.args.get("q", "").strip()[:200]
        narrow = request.args.get("tenant", "").strip()[:200]
        results, unreadable, searched = find_across(current_app.extensions["tenancy"], current_user, kind, text,
                                                    narrow, request.args.get("page", 1)) if text else (None, [], None)
        return self.render("admin/find.html", kind=kind, text=text, narrow=narrow, results=results,
                           limit=MAX_RESULTS, unreadable=unreadable, searched=searched,
                           per_search=TENANTS_PER_SEARCH)
