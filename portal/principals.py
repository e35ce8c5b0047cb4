"""Checking credentials and loading the signed-in principal of a console session."""

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.security import check_password_hash, generate_password_hash

from portal.console_sessions import load_session
from portal.models import Role, User
from portal.permissions import Grant, Principal
from tenants.core.binding import tenant_session
from tenants.core.clock import utcnow
from tenants.core.control_schema import staff, staff_grants, tenants
from tenants.core.errors import TenantError
from tenants.core.names import validate_slug
from tenants.core.tenancy import Tenancy


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return generate_password_hash("no such account")


def _spend_hash_time(password: str) -> None:
    """Check the password against a dummy hash, so an unknown email takes as long as a known one."""
    check_password_hash(_dummy_hash(), password)


@dataclass(frozen=True)
class Account:
    """Who signed in: the account's id, and the key its sessions are bound to."""

    id: int
    key: str


def authenticate_staff(engine: Engine, email: str, password: str) -> Account | None:
    """Return the active staff member with these credentials, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(staff.c.id, staff.c.password_hash, staff.c.active, staff.c.account_key)
                           .where(staff.c.email == email.strip().lower())).first()
    if row is None or not row.password_hash:
        _spend_hash_time(password)
        return None
    if not check_password_hash(row.password_hash, password) or not row.active:
        return None
    with engine.begin() as conn:
        conn.execute(update(staff).where(staff.c.id == row.id).values(last_login_at=utcnow()))
    return Account(row.id, row.account_key)


def _console_user_query(user_id: int | None = None, email: str | None = None):  # type: ignore[no-untyped-def]
    query = select(User).where(User.active.is_(True), User.roles.any(Role.console_access.is_(True)))
    if user_id is not None:
        query = query.where(User.id == user_id)
    if email is not None:
        query = query.where(User.email == email)
    return query


def tenant_key(engine: Engine, slug: str) -> str | None:
    """Return the account key of the tenant registered as `slug` now, or None."""
    with engine.connect() as conn:
        return conn.execute(select(tenants.c.account_key).where(tenants.c.slug == slug)).scalar()


def authenticate_tenant_admin(tenancy: Tenancy, slug: str, email: str, password: str) -> Account | None:
    """Return the tenant's active console-access user with these credentials (key: the tenant's), or None."""
    try:
        tenant = tenancy.registry.find(validate_slug(slug.strip().lower()))
    except TenantError:
        tenant = None
    key = tenant_key(tenancy.control_engine, tenant.slug) if tenant is not None else None
    if tenant is None or tenant.status != "active" or key is None:
        _spend_hash_time(password)
        return None
    with tenant_session(tenancy.storage(tenant)) as session:
        try:
            user = session.scalars(_console_user_query(email=email.strip().lower())).first()
        except SQLAlchemyError:  # a tenant not at head (or unreadable) cannot vouch for its administrators
            user = None
        if user is None or not user.password_hash:
            _spend_hash_time(password)
            return None
        if not user.check_password(password):
            return None
        user.last_login_at = utcnow()
        session.commit()
        return Account(user.id, key)


def load_grants(conn: Connection, staff_id: int) -> tuple[Grant, ...]:
    """Return a staff member's grants."""
    g = staff_grants.c
    rows = conn.execute(select(g.tenant_slug, g.model, g.can_view, g.can_add, g.can_change, g.can_delete)
                        .where(g.staff_id == staff_id))
    return tuple(Grant(**row._mapping) for row in rows)


def load_principal(tenancy: Tenancy, token: str) -> Principal | None:
    """Return the principal of a live session token, or None when it ended or lost its rights."""
    with tenancy.control_engine.connect() as conn:  # one checkout for the session and the grants
        record = load_session(conn, token)
        if record is None:
            return None
        grants = () if record.kind != "staff" or record.staff_superuser else load_grants(conn, record.staff_id)
    if record.kind == "staff":
        return Principal(token, "staff", record.staff_id, record.staff_email or "", record.staff_name or "",
                         record.staff_superuser, None, grants)
    tenant = tenancy.registry.find(record.tenant_slug)
    if tenant is None or tenant.status != "active":
        return None
    with tenant_session(tenancy.storage(tenant)) as session:
        try:
            user = session.scalars(_console_user_query(user_id=record.user_id)).first()
        except SQLAlchemyError:  # not at head or unreadable: nobody is signed in to it for now
            return None
        if user is None:  # deactivated, deleted, or no longer holds a console role
            return None
        return Principal(token, "tenant", user.id, user.email, user.full_name, False, tenant.slug,
                         tenant_key=record.tenant_key)
