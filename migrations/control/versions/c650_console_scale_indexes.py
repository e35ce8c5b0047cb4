"""console at scale: the ledger's revisions and failed results indexed, so the dashboard reads what needs attention only

"Behind head" (a recorded revision other than head) becomes two index ranges instead of a scan
of every version row; tenants whose migration failed are found among failed results only, not
among every result of every run.

Revision ID: c650
Revises: c600
"""
from alembic import op
import sqlalchemy as sa


revision = 'c650'
down_revision = 'c600'
branch_labels = None
depends_on = None

FAILED = sa.text("status IN ('failed', 'timeout', 'unreachable')")


def upgrade():
    with op.batch_alter_table('tenant_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tenant_versions_revision'), ['revision'], unique=False)
    with op.batch_alter_table('tenant_results', schema=None) as batch_op:
        batch_op.create_index('ix_tenant_results_failed', ['tenant_slug', 'id'], unique=False,
                              postgresql_where=FAILED, sqlite_where=FAILED)


def downgrade():
    with op.batch_alter_table('tenant_results', schema=None) as batch_op:
        batch_op.drop_index('ix_tenant_results_failed')
    with op.batch_alter_table('tenant_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tenant_versions_revision'))
