"""tenant stats: the dashboard's per-tenant row counts, refreshed by `for-each-tenant stats`

Revision ID: c600
Revises: c510
"""
from alembic import op
import sqlalchemy as sa


revision = 'c600'
down_revision = 'c510'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'tenant_stats',
        sa.Column('tenant_key', sa.String(length=32), nullable=False),
        sa.Column('table_name', sa.String(length=64), nullable=False),
        sa.Column('tenant_slug', sa.String(length=40), nullable=False),
        sa.Column('row_count', sa.BigInteger(), nullable=False),
        sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('tenant_key', 'table_name', name=op.f('pk_tenant_stats')),
    )
    with op.batch_alter_table('tenant_stats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tenant_stats_tenant_slug'), ['tenant_slug'], unique=False)


def downgrade():
    with op.batch_alter_table('tenant_stats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tenant_stats_tenant_slug'))
    op.drop_table('tenant_stats')
