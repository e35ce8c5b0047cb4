"""Server-side console sessions: the cookie holds a random token, the control plane its hash.

Only the hash is stored, so a leaked table does not sign anyone in; deleting the row ends
the session for every copy of the cookie (logout, password change, deactivation, deletion).
Each row also records the account key of its staff member or tenant: ids and slugs are
reused (SQLite reuses deleted ids; a dropped slug can be created again), keys never, so a
session never outlives the identity it began with.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, insert, select

from tenants.core.clock import utcnow
from tenants.core.control_schema import console_sessions, staff, tenants


def token_hash(token: str) -> str:
    """Return the stored form of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionRecord:
    """A live session row, with the staff row when the principal is staff."""

    kind: str
    staff_id: int | None
    tenant_slug: str | None
    user_id: int | None
    staff_email: str | None = None
    staff_name: str | None = None
    staff_superuser: bool = False
    tenant_key: str | None = None


def open_session(engine: Engine, kind: str, lifetime: timedelta, account_key: str, *, staff_id: int | None = None,
                 tenant_slug: str | None = None, user_id: int | None = None) -> str:
    """Record a new session and return its token (shown to nobody but the cookie)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(console_sessions).values(
            token_hash=token_hash(token), kind=kind, staff_id=staff_id, tenant_slug=tenant_slug,
            user_id=user_id, account_key=account_key, created_at=now, expires_at=now + lifetime,
        ))
        # Expired rows are swept here, at a login, rather than on every request.
        conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
    return token


def load_session(conn: Connection, token: str) -> SessionRecord | None:
    """Return the live session for `token`, or None.

    Staff: the account must be active and still the one the session began with (same key).
    Tenant: the tenant must be active and still the one the session began with.
    """
    s, st, t = console_sessions.c, staff.c, tenants.c
    query = (select(s.kind, s.staff_id, s.tenant_slug, s.user_id, s.expires_at, s.account_key, st.email,
                    st.full_name, st.is_superuser, st.active, st.account_key.label("staff_key"),
                    t.status.label("tenant_status"), t.account_key.label("tenant_key"))
             .select_from(console_sessions.outerjoin(staff, s.staff_id == st.id)
                          .outerjoin(tenants, s.tenant_slug == t.slug))
             .where(s.token_hash == token_hash(token)))
    row = conn.execute(query).first()
    if row is None or row.account_key is None or _aware(row.expires_at) <= utcnow():
        return None
    if row.kind == "staff" and (not row.active or row.staff_key != row.account_key):
        return None
    if row.kind == "tenant" and (row.tenant_status != "active" or row.tenant_key != row.account_key):
        return None
    return SessionRecord(row.kind, row.staff_id, row.tenant_slug, row.user_id, row.email, row.full_name,
                         bool(row.is_superuser), row.tenant_key)


def close_session(engine: Engine, token: str) -> None:
    """End one session."""
    with engine.begin() as conn:
        conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == token_hash(token)))


def close_staff_sessions(engine: Engine, staff_id: int) -> None:
    """End every session of a staff member (password changed, deactivated)."""
    with engine.begin() as conn:
        conn.execute(delete(console_sessions).where(console_sessions.c.staff_id == staff_id))


def close_tenant_sessions(engine: Engine, slug: str) -> None:
    """End every session of a tenant's administrators (the tenant is dropped or suspended)."""
    with engine.begin() as conn:
        conn.execute(delete(console_sessions).where(console_sessions.c.tenant_slug == slug))


def close_tenant_user_sessions(engine: Engine, slug: str, user_id: int) -> None:
    """End every session of one tenant user (password changed, deactivated, deleted)."""
    c = console_sessions.c
    with engine.begin() as conn:
        conn.execute(delete(console_sessions).where(and_(c.tenant_slug == slug, c.user_id == user_id)))


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
