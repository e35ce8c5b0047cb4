"""account keys: console sessions and History belong to identities that are never reused

Staff ids (SQLite reuses deleted rows' ids) and tenant slugs (drop, then create again) are
reused; a random key per staff member and per tenant is not. Sessions record the key they
began with, History the tenant's key.

Revision ID: c500
Revises: c400
"""
import secrets

from alembic import op
import sqlalchemy as sa


revision = 'c500'
down_revision = 'c400'
branch_labels = None
depends_on = None


def _fill(table: str) -> None:
    conn = op.get_bind()
    t = sa.table(table, sa.column('id', sa.Integer), sa.column('account_key', sa.String))
    for (row_id,) in conn.execute(sa.select(t.c.id)).all():
        conn.execute(sa.update(t).where(t.c.id == row_id).values(account_key=secrets.token_hex(16)))


def upgrade():
    for table in ('staff', 'tenants'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('account_key', sa.String(length=32), nullable=True))
        _fill(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('account_key', existing_type=sa.String(length=32), nullable=False)
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account_key', sa.String(length=32), nullable=True))
    # Sessions from before the keys cannot be checked: they end (everyone signs in again).
    op.execute(sa.text('DELETE FROM console_sessions'))
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_key', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_audit_log_tenant_key'), ['tenant_key'], unique=False)


def downgrade():
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_tenant_key'))
        batch_op.drop_column('tenant_key')
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_column('account_key')
    for table in ('tenants', 'staff'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('account_key')
