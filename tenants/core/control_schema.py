"""Control-plane tables: the tenant registry, version ledger, runs, staff, grants and audit.

They have their own MetaData (and their own Alembic chain in migrations/control/), so the
tenant chain's autogenerate never sees them.
"""

import secrets

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TENANT_STATUSES = ("provisioning", "active", "suspended", "failed")
FAILED_RESULT = text("status IN ('failed', 'timeout', 'unreachable')")


def new_account_key() -> str:
    """Return a random key that names one account (or tenant) for good: ids and slugs get reused, keys never."""
    return secrets.token_hex(16)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

tenants = Table(
    "tenants", metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(40), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("status_reason", Text),
    Column("database_url", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Console sessions and History belong to this key: a dropped and re-created slug gets a new one.
    Column("account_key", String(32), nullable=False, default=new_account_key),
    CheckConstraint("status IN ('provisioning', 'active', 'suspended', 'failed')", name="status"),
)

# The ledger: each tenant's current revision as last recorded, mirroring its alembic_version.
tenant_versions = Table(
    "tenant_versions", metadata,
    Column("tenant_slug", String(40), primary_key=True),
    Column("revision", String(64), index=True),  # the console's "behind head": index ranges, not a scan
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(36)),
)

migration_runs = Table(
    "migration_runs", metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("target", String(64)),
    Column("started_by", String(200), nullable=False),
    Column("host", String(200)),
    Column("pid", Integer),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(20), nullable=False),
    Column("tenants_total", Integer, nullable=False, default=0),
    Column("tenants_ok", Integer, nullable=False, default=0),
    Column("tenants_failed", Integer, nullable=False, default=0),
    Column("tenants_skipped", Integer, nullable=False, default=0),
    Column("tenants_busy", Integer, nullable=False, default=0),
    Column("options", Text),
)

tenant_results = Table(
    "tenant_results", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", String(36), ForeignKey("migration_runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("tenant_slug", String(40), nullable=False, index=True),
    Column("from_revision", String(64)),
    Column("to_revision", String(64)),
    Column("status", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Float),
    Column("error", Text),
    Column("detail", Text),
    Index("ix_tenant_results_run_slug", "run_id", "tenant_slug"),
    # The console's "last migration failed": failed results only, not every result of every run.
    Index("ix_tenant_results_failed", "tenant_slug", "id", postgresql_where=FAILED_RESULT,
          sqlite_where=FAILED_RESULT),
)

# Each tenant's latest result per scope ('migration': runs that move it along the chain,
# 'task': maintenance runs), kept as results are recorded, so that "the last result of every
# tenant" costs a row per tenant, not a scan of every result ever written. Keyed by the
# tenant's account_key: a tenant dropped and re-created under its slug starts with none.
tenant_latest_results = Table(
    "tenant_latest_results", metadata,
    Column("tenant_key", String(32), primary_key=True),
    Column("scope", String(10), primary_key=True),
    Column("tenant_slug", String(40), nullable=False),
    Column("result_id", Integer, nullable=False),
    CheckConstraint("scope IN ('migration', 'task')", name="scope"),
)

# A run handed to Celery workers: its unit and run-wide parameters (e.g. the rendered SQL), once.
dispatched_runs = Table(
    "dispatched_runs", metadata,
    Column("run_id", String(36), ForeignKey("migration_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("unit", String(80), nullable=False),
    Column("payload", Text, nullable=False),
    Column("jobs_per_server", Integer, nullable=False),
    Column("broker", String(300)),
    Column("queue", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The plan of a dispatched run, one row per selected tenant: what it needs, and for a pending
# tenant its server, its slot on that server (one of --jobs-per-server) and its place in the slot.
dispatched_tenants = Table(
    "dispatched_tenants", metadata,
    Column("run_id", String(36), ForeignKey("migration_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_slug", String(40), primary_key=True),
    Column("planned", String(20), nullable=False),
    Column("from_revision", String(64)),
    Column("server", String(300)),
    Column("slot", Integer),
    Column("position", Integer),
    Column("params", Text),
    Column("note", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("resent", Integer, nullable=False, server_default="0"),  # times the watchdog sent its task again
    Column("started_at", DateTime(timezone=True)),  # a maintenance task begun by a worker (fleet.celery.relay)
    CheckConstraint("planned IN ('pending', 'at-target', 'error', 'left-out')", name="planned"),
    Index("ix_dispatched_tenants_slot", "run_id", "server", "slot", "position"),
)

fleet_locks = Table(
    "fleet_locks", metadata,
    Column("name", String(40), primary_key=True),
    Column("run_id", String(36), nullable=False),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    # Seconds without a heartbeat after which the holder counts as stale: its own limit, not the newcomer's.
    Column("stale_after", Float, nullable=True),
)

staff = Table(
    "staff", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("full_name", String(200), nullable=False, default=""),
    Column("password_hash", String(255), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("is_superuser", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_login_at", DateTime(timezone=True)),
    # Console sessions belong to this key, not to the id (SQLite reuses the ids of deleted rows).
    Column("account_key", String(32), nullable=False, default=new_account_key),
)

# Django-style permissions: per staff member, per tenant (NULL = every tenant), per model.
staff_grants = Table(
    "staff_grants", metadata,
    Column("id", Integer, primary_key=True),
    Column("staff_id", Integer, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("tenant_slug", String(40)),
    Column("model", String(40), nullable=False),
    Column("can_view", Boolean, nullable=False, default=True),
    Column("can_add", Boolean, nullable=False, default=False),
    Column("can_change", Boolean, nullable=False, default=False),
    Column("can_delete", Boolean, nullable=False, default=False),
    UniqueConstraint("staff_id", "tenant_slug", "model", name="uq_staff_grants_scope"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("staff_id", Integer, ForeignKey("staff.id", ondelete="SET NULL")),
    Column("actor", String(254), nullable=False),
    Column("tenant_slug", String(40), index=True),
    # The tenant's account_key: a tenant dropped and re-created under its slug has a History of its own.
    Column("tenant_key", String(32), index=True),
    Column("model", String(40), nullable=False),
    Column("object_id", String(64)),
    Column("object_label", String(300)),
    Column("action", String(20), nullable=False),
    Column("changes", Text),
)

backups = Table(
    "backups", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", String(36)),
    Column("tenant_slug", String(40), nullable=False, index=True),
    Column("revision", String(64)),
    Column("path", Text, nullable=False),
    Column("size_bytes", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Signed-in console sessions: the cookie carries a random token, this table its hash, so
# logout (or a password change) ends a session even if its cookie was copied.
console_sessions = Table(
    "console_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("staff_id", Integer, ForeignKey("staff.id", ondelete="CASCADE"), index=True),
    Column("tenant_slug", String(40), index=True),
    Column("user_id", Integer),
    # The staff member's or the tenant's account_key when the session began: it must still match.
    Column("account_key", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("kind IN ('staff', 'tenant')", name="kind"),
)

# Row counts per tenant table for the console's dashboard, refreshed by `for-each-tenant stats`
# (the dashboard never opens every tenant). Keyed by the tenant's account_key: a tenant dropped
# and re-created under its slug starts with no stats rather than the old tenant's.
tenant_stats = Table(
    "tenant_stats", metadata,
    Column("tenant_key", String(32), primary_key=True),
    Column("table_name", String(64), primary_key=True),
    Column("tenant_slug", String(40), nullable=False, index=True),
    Column("row_count", BigInteger, nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
)
