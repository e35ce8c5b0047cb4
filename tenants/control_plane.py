"""Bring the control-plane database to the head of its own revision chain."""

from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from tenants.storage import unreachable

# Serialises control-plane upgrades between processes on PostgreSQL.
CONTROL_LOCK_KEY = 0x5445_4E41_4E54  # "TENANT"


def upgrade_control(engine: Engine, scripts: ScriptDirectory) -> tuple[str | None, str | None]:
    """Upgrade the control plane to head in one transaction; return (from, to)."""
    try:
        with engine.connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CONTROL_LOCK_KEY})
            opts = {"transactional_ddl": True, "render_as_batch": conn.dialect.name == "sqlite"}
            before = MigrationContext.configure(conn, opts=opts).get_current_revision()
            head = scripts.get_current_head()
            if before == head:
                return before, head
            ctx = MigrationContext.configure(
                conn, opts={**opts, "fn": lambda rev, context: scripts._upgrade_revs("heads", rev)}
            )
            with Operations.context(ctx):
                ctx.run_migrations()
            return before, ctx.get_current_revision()
    except OperationalError as e:
        raise unreachable(str(engine.url), e) from e
