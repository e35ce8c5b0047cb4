"""dispatched tenants: when a worker began a tenant's maintenance task

A task leaves no mark in the tenant, so a worker killed between the task's commit and its
result must not have the task run again when its message is delivered again: the step reads
this first (tenants.fleet.celery.relay).

Revision ID: c800
Revises: c700
"""
from alembic import op
import sqlalchemy as sa


revision = 'c800'
down_revision = 'c700'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('dispatched_tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('dispatched_tenants', schema=None) as batch_op:
        batch_op.drop_column('started_at')
