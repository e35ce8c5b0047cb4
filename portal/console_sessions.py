"""Server-side console sessions: the cookie holds a random token, the control plane its hash.

Only the hash is stored, so a leaked table does not sign anyone in; deleting the row ends
the session for every copy of the cookie (logout, password change, deactivation).
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, insert, select

from tenants.core.clock import utcnow
from tenants.core.control_schema import console_sessions, staff


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


def open_session(engine: Engine, kind: str, lifetime: timedelta, *, staff_id: int | None = None,
                 tenant_slug: str | None = None, user_id: int | None = None) -> str:
    """Record a new session and return its token (shown to nobody but the cookie)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(console_sessions).values(
            token_hash=token_hash(token), kind=kind, staff_id=staff_id, tenant_slug=tenant_slug,
            user_id=user_id, created_at=now, expires_at=now + lifetime,
        ))
        # Expired rows are swept here, at a login, rather than on every request.
        conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
    return token


def load_session(conn: Connection, token: str) -> SessionRecord | None:
    """Return the live session for `token` (active staff only), or None."""
    s, st = console_sessions.c, staff.c
    query = (select(s.kind, s.staff_id, s.tenant_slug, s.user_id, s.expires_at, st.email, st.full_name,
                    st.is_superuser, st.active)
             .select_from(console_sessions.outerjoin(staff, s.staff_id == st.id))
             .where(s.token_hash == token_hash(token)))
    row = conn.execute(query).first()
    if row is None or _aware(row.expires_at) <= utcnow():
        return None
    if row.kind == "staff" and not row.active:
        return None
    return SessionRecord(row.kind, row.staff_id, row.tenant_slug, row.user_id, row.email, row.full_name,
                         bool(row.is_superuser))


def close_session(engine: Engine, token: str) -> None:
    """End one session."""
    with engine.begin() as conn:
        conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == token_hash(token)))


def close_staff_sessions(engine: Engine, staff_id: int) -> None:
    """End every session of a staff member (password changed, deactivated)."""
    with engine.begin() as conn:
        conn.execute(delete(console_sessions).where(console_sessions.c.staff_id == staff_id))


def close_tenant_user_sessions(engine: Engine, slug: str, user_id: int) -> None:
    """End every session of one tenant administrator."""
    c = console_sessions.c
    with engine.begin() as conn:
        conn.execute(delete(console_sessions).where(and_(c.tenant_slug == slug, c.user_id == user_id)))


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
