"""tenant latest results: each tenant's last result per scope, kept as results are recorded

`last_results` read every row of tenant_results (it grows with every run, not with the fleet);
this table holds one pointer per tenant and scope ('migration' or 'task'), keyed by the tenant's
account_key, so a tenant dropped and re-created under its slug starts with no result.

Filled from the history: per registered tenant and scope, the latest result that finished after
the tenant's registry row was created (results of an older tenant of the same slug finished
before it was dropped, so before the new row).

Revision ID: c700
Revises: c650
"""
from datetime import timedelta, timezone

from alembic import op
import sqlalchemy as sa


revision = 'c700'
down_revision = 'c650'
branch_labels = None
depends_on = None

MIGRATION_KINDS = ("upgrade", "downgrade", "create-tenant", "upgrade-tenant", "downgrade-tenant", "restore-tenant")


def _utc(moment):
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def upgrade():
    table = op.create_table(
        'tenant_latest_results',
        sa.Column('tenant_key', sa.String(length=32), nullable=False),
        sa.Column('scope', sa.String(length=10), nullable=False),
        sa.Column('tenant_slug', sa.String(length=40), nullable=False),
        sa.Column('result_id', sa.Integer(), nullable=False),
        sa.CheckConstraint("scope IN ('migration', 'task')", name=op.f('ck_tenant_latest_results_scope')),
        sa.PrimaryKeyConstraint('tenant_key', 'scope', name=op.f('pk_tenant_latest_results')),
    )
    conn = op.get_bind()
    tenants = sa.table('tenants', sa.column('slug'), sa.column('account_key'), sa.column('created_at', sa.DateTime(timezone=True)))
    results = sa.table('tenant_results', sa.column('id'), sa.column('run_id'), sa.column('tenant_slug'),
                       sa.column('started_at', sa.DateTime(timezone=True)), sa.column('duration_ms', sa.Float))
    runs = sa.table('migration_runs', sa.column('id'), sa.column('kind'))
    rows = conn.execute(
        sa.select(results.c.id, results.c.tenant_slug, results.c.started_at, results.c.duration_ms,
                  runs.c.kind, tenants.c.account_key, tenants.c.created_at)
        .join(tenants, tenants.c.slug == results.c.tenant_slug).join(runs, runs.c.id == results.c.run_id)
        .order_by(results.c.id))
    latest = {}
    for row in rows:  # once, at upgrade: the whole history, oldest first, so the last one kept wins
        finished = _utc(row.started_at) + timedelta(milliseconds=row.duration_ms or 0)
        if finished >= _utc(row.created_at):
            scope = 'migration' if row.kind in MIGRATION_KINDS else 'task'
            latest[(row.account_key, scope)] = (row.tenant_slug, row.id)
    if latest:
        op.bulk_insert(table, [{'tenant_key': key, 'scope': scope, 'tenant_slug': slug, 'result_id': result_id}
                               for (key, scope), (slug, result_id) in latest.items()])


def downgrade():
    op.drop_table('tenant_latest_results')
