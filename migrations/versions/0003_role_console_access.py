"""roles.console_access: users with such a role administer their tenant's console

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:47:10.200000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


# tenant-portal: acknowledge rebuild-cascade:roles -- the portal runs revisions with SQLite foreign keys off, so users_roles keeps its rows


def upgrade():
    with op.batch_alter_table('roles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('console_access', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('roles', schema=None) as batch_op:
        batch_op.drop_column('console_access')
