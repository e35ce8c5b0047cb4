"""fleet lock holders record their own staleness limit; the watchdog counts re-sent tasks

Revision ID: c510
Revises: c500
"""
from alembic import op
import sqlalchemy as sa


revision = 'c510'
down_revision = 'c500'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('fleet_locks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stale_after', sa.Float(), nullable=True))
    with op.batch_alter_table('dispatched_tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resent', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('dispatched_tenants', schema=None) as batch_op:
        batch_op.drop_column('resent')
    with op.batch_alter_table('fleet_locks', schema=None) as batch_op:
        batch_op.drop_column('stale_after')
