"""ORM classes over the control-plane tables, for the console's control views only.

The tables themselves are defined (and migrated) in tenants/control_schema.py; these
classes map them so Flask-Admin can list and edit them through Flask-SQLAlchemy's session.
"""

from sqlalchemy import select
from sqlalchemy.orm import column_property, relationship

from portal.extensions import db
from tenants.core.control_schema import (
    audit_log,
    migration_runs,
    staff,
    staff_grants,
    tenant_results,
    tenant_versions,
    tenants,
)


class TenantRecord(db.Model):
    __table__ = tenants
    # The ledger's revision for the tenant (mirrors its alembic_version).
    revision = column_property(
        select(tenant_versions.c.revision).where(tenant_versions.c.tenant_slug == tenants.c.slug)
        .correlate_except(tenant_versions).scalar_subquery())

    def __str__(self) -> str:
        return self.slug


class MigrationRun(db.Model):
    __table__ = migration_runs
    results = relationship("TenantResultRecord", back_populates="run", order_by="TenantResultRecord.id",
                           viewonly=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.id[:8]}"


class TenantResultRecord(db.Model):
    __table__ = tenant_results
    run = relationship(MigrationRun, back_populates="results", viewonly=True)

    def __str__(self) -> str:
        return f"{self.tenant_slug}: {self.status}"


class StaffMember(db.Model):
    __table__ = staff
    grants = relationship("StaffGrant", back_populates="staff_member", cascade="all, delete-orphan",
                          order_by="StaffGrant.id")

    def __str__(self) -> str:
        return self.email


class StaffGrant(db.Model):
    __table__ = staff_grants
    staff_member = relationship(StaffMember, back_populates="grants")

    def __str__(self) -> str:
        rights = "/".join(a for a in ("view", "add", "change", "delete") if getattr(self, f"can_{a}"))
        return f"{self.model} on {self.tenant_slug or 'all tenants'}: {rights}"


class AuditEntry(db.Model):
    __table__ = audit_log

    def __str__(self) -> str:
        return f"{self.action} {self.model} {self.object_label}"
