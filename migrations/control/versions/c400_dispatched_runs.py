"""dispatched runs: a run handed to Celery workers keeps its plan in the control plane

Revision ID: c400
Revises: c200
"""
from alembic import op
import sqlalchemy as sa


revision = 'c400'
down_revision = 'c200'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('dispatched_runs',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('unit', sa.String(length=80), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('jobs_per_server', sa.Integer(), nullable=False),
    sa.Column('broker', sa.String(length=300), nullable=True),
    sa.Column('queue', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['migration_runs.id'], name=op.f('fk_dispatched_runs_run_id_migration_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_dispatched_runs'))
    )
    op.create_table('dispatched_tenants',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('tenant_slug', sa.String(length=40), nullable=False),
    sa.Column('planned', sa.String(length=20), nullable=False),
    sa.Column('from_revision', sa.String(length=64), nullable=True),
    sa.Column('server', sa.String(length=300), nullable=True),
    sa.Column('slot', sa.Integer(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=True),
    sa.Column('params', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['migration_runs.id'], name=op.f('fk_dispatched_tenants_run_id_migration_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'tenant_slug', name=op.f('pk_dispatched_tenants')),
    sa.CheckConstraint("planned IN ('pending', 'at-target', 'error', 'left-out')", name=op.f('ck_dispatched_tenants_planned'))
    )
    with op.batch_alter_table('dispatched_tenants', schema=None) as batch_op:
        batch_op.create_index('ix_dispatched_tenants_slot', ['run_id', 'server', 'slot', 'position'], unique=False)
    # Relays and run-status look a tenant's result up by run and slug.
    with op.batch_alter_table('tenant_results', schema=None) as batch_op:
        batch_op.create_index('ix_tenant_results_run_slug', ['run_id', 'tenant_slug'], unique=False)


def downgrade():
    with op.batch_alter_table('tenant_results', schema=None) as batch_op:
        batch_op.drop_index('ix_tenant_results_run_slug')
    with op.batch_alter_table('dispatched_tenants', schema=None) as batch_op:
        batch_op.drop_index('ix_dispatched_tenants_slot')
    op.drop_table('dispatched_tenants')
    op.drop_table('dispatched_runs')
