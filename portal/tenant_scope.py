"""Which tenants a principal may see, as SQL: the switcher's search, the dashboard's pages, Find, the menu's tenant.

At thousands of tenants nothing here reads the whole registry: the principal's grants become
a WHERE clause (every tenant, or the granted slugs), and every query is bounded.
"""

from collections.abc import Collection
from typing import Any

from sqlalchemy import Engine, Select, false, func, or_, select

from portal.permissions import TENANT_MODELS, Principal, may_enter
from tenants.core.control_schema import tenants

SEARCH_LIMIT = 20  # results per switcher search, at most
SEARCH_TERM_CHARS = 200  # longer search text is cut (no slug or name is longer)


def granted_slugs(principal: Principal, models: Collection[str] = TENANT_MODELS) -> frozenset[str] | None:
    """Return the slugs where `principal` may view one of `models` (entering: any), or None for every tenant."""
    if principal.kind == "tenant":
        return frozenset({principal.tenant_slug}) if principal.tenant_slug else frozenset()
    if principal.is_superuser:
        return None
    grants = [g for g in principal.grants if g.model in models and g.allows("view")]
    if any(g.tenant_slug is None for g in grants):
        return None
    return frozenset(g.tenant_slug for g in grants if g.tenant_slug)


def scoped(query: Select, principal: Principal, models: Collection[str] = TENANT_MODELS) -> Select:
    """Restrict a query over `tenants` to the tenants `principal` may enter (or view one of `models` in)."""
    slugs = granted_slugs(principal, models)
    if slugs is None:
        return query
    return query.where(tenants.c.slug.in_(sorted(slugs)) if slugs else false())


def matching(query: Select, term: str | None) -> Select:
    """Narrow a query over `tenants` to slugs or names containing `term`, taken as plain text."""
    t = tenants.c
    # Only printable text is searched: a NUL would be refused by PostgreSQL's driver.
    needle = "".join(ch for ch in (term or "")[:SEARCH_TERM_CHARS] if ch.isprintable()).strip().lower()
    if not needle:
        return query
    # autoescape: a typed % or _ is a character, not a wildcard.
    return query.where(or_(t.slug.contains(needle, autoescape=True),
                           func.lower(t.display_name).contains(needle, autoescape=True)))


def _bounded(value: Any, default: int, highest: int) -> int:
    """Return `value` as an int within 0..highest; anything else (text, negative, huge) gives a sane value."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return default
    return min(max(number, 0), highest)


def search_tenants(engine: Engine, principal: Principal, term: str, offset: Any = 0,
                   limit: Any = 10, active_only: bool = True) -> list[tuple[str, str]]:
    """Return (slug, "Name (slug)") of (active) tenants `principal` may enter whose slug or name contains `term`."""
    t = tenants.c
    query = matching(scoped(select(t.slug, t.display_name), principal), term)
    if active_only:
        query = query.where(t.status == "active")
    query = (query.order_by(t.slug).offset(_bounded(offset, 0, 10_000))
             .limit(_bounded(limit, 10, SEARCH_LIMIT) or 1))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    # The grants decide once more, row by row: SQL narrowed the search, it does not grant anything.
    return [(row.slug, f"{row.display_name} ({row.slug})") for row in rows if may_enter(principal, row.slug)]


def first_visible_slug(engine: Engine, principal: Principal, preferred: str | None = None) -> str | None:
    """Return `preferred` when `principal` may enter it and it is active, else the first such tenant by slug."""
    t = tenants.c
    query = scoped(select(t.slug).where(t.status == "active"), principal)
    with engine.connect() as conn:
        if preferred and may_enter(principal, preferred):
            if conn.execute(query.where(t.slug == preferred)).first() is not None:
                return preferred
        return conn.execute(query.order_by(t.slug).limit(1)).scalar()
