"""The tenant of a console request: taken from the URL, checked, then bound to the ORM session.

Every tenant page lives under `/t/<tenant>/admin/...`. For such a request this module
1. pops `tenant` from the URL values (so Flask-Admin's views never see it) into `g`,
2. refuses it unless the signed-in principal may enter that tenant (403, also for
   unknown tenants, so slugs cannot be probed) and the tenant is active,
3. hands out one ORM session bound to that tenant only (PostgreSQL: a
   `schema_translate_map` compiled into every statement; SQLite: the tenant's own file),
   closed when the request ends.
`url_for` fills `tenant` in from the current request, so every link, form action, export
and redirect Flask-Admin builds stays on the tenant of the URL: two tabs never mix.
"""

from typing import Any

from flask import Flask, abort, current_app, g, redirect, session
from flask_login import current_user
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from portal.auth import login_url_for_here
from portal.permissions import may_enter
from portal.tenant_scope import first_visible_slug
from tenants.core.control_schema import tenant_versions, tenants
from tenants.core.engines import unreachable
from tenants.core.errors import InvalidTenantName
from tenants.core.names import validate_slug
from tenants.core.registry import Tenant
from tenants.core.storage import TenantStorage

TENANT_ARG = "tenant"


class NoTenantBound(RuntimeError):
    """Tenant data was asked for outside a request bound to a tenant."""


def current_tenant_slug() -> str | None:
    """Return the slug of the tenant in this request's URL, if any."""
    return g.get("tenant_slug")


def current_tenant() -> Tenant:
    """Return the tenant bound to this request (checked and active)."""
    tenant = g.get("tenant")
    if tenant is None:
        raise NoTenantBound("no tenant is bound to this request")
    return tenant


def request_tenant(slug: str) -> Tenant | None:
    """Return the registered tenant `slug` with its ledger revision, read once per request (one row, one query)."""
    found: dict[str, Tenant | None] = g.setdefault("registry_tenants", {})
    if slug not in found:
        t, v = tenants.c, tenant_versions.c
        query = (select(t.slug, t.display_name, t.status, t.status_reason, t.database_url, t.created_at, v.revision)
                 .select_from(tenants.outerjoin(tenant_versions, v.tenant_slug == t.slug)).where(t.slug == slug))
        engine = current_app.extensions["tenancy"].control_engine
        try:
            with engine.connect() as conn:
                row = conn.execute(query).first()
        except OperationalError as e:
            raise unreachable(str(engine.url), e) from e
        found[slug] = Tenant(*row[:6]) if row is not None else None
        g.setdefault("tenant_revisions", {})[slug] = row.revision if row is not None else None
    return found[slug]


def menu_tenant_slug() -> str | None:
    """Return the tenant links point to: this request's, else the last one visited, else the first visible."""
    slug = current_tenant_slug()
    if slug:
        return slug
    if not current_user.is_authenticated:
        return None
    if "menu_tenant" not in g:
        engine = current_app.extensions["tenancy"].control_engine
        g.menu_tenant = first_visible_slug(engine, current_user, session.get("last_tenant"))
    return g.menu_tenant


def _bind_for(storage: TenantStorage) -> Engine:
    """Return the ORM bind of a tenant, cached per process (binds are immutable)."""
    binds: dict[tuple[str, str], Engine] = current_app.extensions["tenant_binds"]
    key = (storage.url, storage.slug)
    bind = binds.get(key)
    if bind is None:
        bind = binds[key] = storage.orm_bind()
    return bind


def tenant_db_session() -> Session:
    """Return this request's ORM session, bound to the request's tenant and no other."""
    db_session = g.get("tenant_db_session")
    if db_session is None:
        tenant = current_tenant()
        storage = current_app.extensions["tenancy"].storage(tenant)
        db_session = g.tenant_db_session = Session(bind=_bind_for(storage), expire_on_commit=False)
        db_session.info["tenant_slug"] = tenant.slug
    if db_session.info["tenant_slug"] != current_tenant_slug():  # defence in depth: never cross tenants
        raise NoTenantBound("the ORM session belongs to another tenant")
    return db_session


class TenantSessionProxy:
    """What tenant ModelViews get as their session: each attribute goes to this request's session.

    It has a `session` attribute (itself), so Flask-Admin takes it as a db object rather than a
    deprecated raw session, and calls `.query()`, `.get()`, `.commit()` ... on it per request.
    """

    def __init__(self) -> None:
        self.session = self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # introspection (dir/hasattr at start-up) must not need a request
            raise AttributeError(name)
        return getattr(tenant_db_session(), name)


def _pull_tenant(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if values and TENANT_ARG in values:
        g.tenant_slug = values.pop(TENANT_ARG)


def _add_tenant(endpoint: str, values: dict[str, Any]) -> None:
    if TENANT_ARG not in values and current_app.url_map.is_endpoint_expecting(endpoint, TENANT_ARG):
        slug = menu_tenant_slug()
        if slug:
            values[TENANT_ARG] = slug


def _bind_request_tenant() -> Any:
    slug = current_tenant_slug()
    if slug is None:
        return None
    if not current_user.is_authenticated:
        return redirect(login_url_for_here())
    try:
        validate_slug(slug)
    except InvalidTenantName:
        abort(403)
    if not may_enter(current_user, slug):
        abort(403)
    tenant = request_tenant(slug)
    if tenant is None:
        abort(404 if current_user.is_superuser else 403)
    if tenant.status != "active":
        abort(403)
    g.tenant = tenant
    if session.get("last_tenant") != slug:
        session["last_tenant"] = slug
    return None


def _close_tenant_session(error: BaseException | None) -> None:
    db_session = g.pop("tenant_db_session", None)
    if db_session is not None:
        db_session.close()  # rolls back anything not committed


def init_app(app: Flask) -> None:
    """Resolve, check and bind the URL's tenant on every tenant request of `app`."""
    app.extensions["tenant_binds"] = {}
    app.url_value_preprocessor(_pull_tenant)
    app.url_defaults(_add_tenant)
    app.before_request(_bind_request_tenant)
    app.teardown_appcontext(_close_tenant_session)
