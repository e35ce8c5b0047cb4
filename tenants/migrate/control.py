"""Bring the control-plane database to the head of its own revision chain, once per Tenancy."""

import threading

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import DatabaseError, OperationalError

from tenants.core.engines import unreachable, unreadable
from tenants.core.tenancy import Tenancy
from tenants.migrate.driver import current_revision, run_steps, steps_between

# Serialises control-plane upgrades between processes on PostgreSQL.
CONTROL_LOCK_KEY = 0x5445_4E41_4E54  # "TENANT"

_ENSURE_LOCK = threading.Lock()


def upgrade_control(engine: Engine, scripts: ScriptDirectory) -> tuple[str | None, str | None]:
    """Upgrade the control plane to head in one transaction; return (from, to)."""
    try:
        with engine.connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CONTROL_LOCK_KEY})
            opts = {"transactional_ddl": True, "render_as_batch": conn.dialect.name == "sqlite"}
            before = current_revision(conn, opts)
            head = scripts.get_current_head()
            if before == head:
                return before, head
            return before, run_steps(conn, steps_between(scripts, before, "heads"), opts)
    except OperationalError as e:
        raise unreachable(str(engine.url), e) from e
    except DatabaseError as e:
        if engine.dialect.name != "sqlite":
            raise
        raise unreadable(str(engine.url), e) from e  # "file is not a database", "disk image is malformed"


def ensure_control(tenancy: Tenancy) -> tuple[str | None, str | None]:
    """Upgrade the control plane to head the first time this Tenancy asks; return (from, to).

    A process holds one Tenancy per settings (the CLI's invocation, the web app, a worker), so the
    upgrade check costs one round trip per process, not one per command or request.
    """
    with _ENSURE_LOCK:
        if tenancy.control_revisions is None:
            tenancy.control_revisions = upgrade_control(tenancy.control_engine, tenancy.control_scripts)
        return tenancy.control_revisions
