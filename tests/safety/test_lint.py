"""The revision lint: one fixture revision per hazard, a safe one, acknowledgements, ranges and the gate."""

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from tenants.cli.exit_codes import exit_code_for
from tenants.migrate.errors import InvalidRevision
from tenants.safety.errors import GateBlocked
from tenants.safety.gate import gate, plan_gate
from tenants.safety.lint.chain import lint_revisions
from tenants.safety.lint.hazards import BREAKS_ROWS, DATA_LOSS, LOCK, NON_TRANSACTIONAL
from tests.chains import add_revision, copy_chain

# (kind, severity, table, column, upgrade body) on top of the real chain at 0003.
HAZARDS = [
    ("drop-table", DATA_LOSS, "users_roles", None, "op.drop_table('users_roles')"),
    ("drop-column", DATA_LOSS, "users", "last_login_at", "op.drop_column('users', 'last_login_at')"),
    ("likely-rename", DATA_LOSS, "products", "name", """
        op.add_column('products', sa.Column('title', sa.String(length=200), nullable=True))
        op.drop_column('products', 'name')"""),
    ("narrow-type", DATA_LOSS, "products", "name",
     "op.alter_column('products', 'name', type_=sa.String(50), existing_type=sa.String(200))"),
    ("narrow-type", DATA_LOSS, "products", "stock",
     "op.alter_column('products', 'stock', type_=sa.SmallInteger(), existing_type=sa.Integer())"),
    ("narrow-type", DATA_LOSS, "products", "price",
     "op.alter_column('products', 'price', type_=sa.Numeric(10, 1), existing_type=sa.Numeric(10, 2))"),
    ("destructive-sql", DATA_LOSS, "products", None, "op.execute('DELETE FROM products')"),
    ("destructive-sql", DATA_LOSS, "users_roles", None, "op.execute('TRUNCATE users_roles')"),
    ("destructive-sql", DATA_LOSS, "products", "stock", "op.execute('UPDATE products SET stock = 0')"),
    ("not-null-no-default", BREAKS_ROWS, "products", "code",
     "op.add_column('products', sa.Column('code', sa.String(20), nullable=False))"),
    ("set-not-null", BREAKS_ROWS, "users", "last_login_at",
     "op.alter_column('users', 'last_login_at', nullable=False, existing_type=sa.DateTime(timezone=True))"),
    ("unique-constraint", BREAKS_ROWS, "products", "name",
     "op.create_unique_constraint('uq_products_name', 'products', ['name'])"),
    ("check-constraint", BREAKS_ROWS, "products", None,
     "op.create_check_constraint('ck_products_name_long', 'products', 'length(name) > 2')"),
    ("index-lock", LOCK, "products", "name", "op.create_index('ix_products_name', 'products', ['name'])"),
    ("foreign-key-lock", LOCK, "users_roles", "role_id", """
        op.drop_constraint('fk_users_roles_role_id_roles', 'users_roles', type_='foreignkey')
        op.create_foreign_key('fk_users_roles_role_id_roles', 'users_roles', 'roles', ['role_id'], ['id'])"""),
    ("type-rewrite", LOCK, "products", "stock",
     "op.alter_column('products', 'stock', type_=sa.BigInteger(), existing_type=sa.Integer())"),
    ("non-transactional", NON_TRANSACTIONAL, None, None, """
        with op.get_context().autocommit_block():
            op.create_index('ix_products_name', 'products', ['name'], postgresql_concurrently=True)"""),
]

SAFE = """
    op.add_column('products', sa.Column('note', sa.Text(), nullable=True))
    op.add_column('products', sa.Column('featured', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column('products', sa.Column('code', sa.String(20), nullable=True))
    op.execute("UPDATE products SET code = sku")
    op.alter_column('products', 'code', nullable=False, existing_type=sa.String(20))
    op.alter_column('products', 'name', type_=sa.String(300), existing_type=sa.String(200))
    op.add_column('users', sa.Column('role_id', sa.Integer(), nullable=True))
    op.create_foreign_key('fk_users_role_id_roles', 'users', 'roles', ['role_id'], ['id'], postgresql_not_valid=True)
    op.create_check_constraint('ck_products_stock_small', 'products', 'stock < 1000000', postgresql_not_valid=True)
    op.create_table('tags',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('product_id', sa.Integer(), sa.ForeignKey('products.id'), nullable=False),
        sa.Column('label', sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_tags_label', 'tags', ['label'], unique=True)
    op.create_unique_constraint('uq_tags_product_label', 'tags', ['product_id', 'label'])
    op.execute("DELETE FROM tags")
"""


def chain_with(tmp_path: Path, body: str, extra: str = "") -> ScriptDirectory:
    chain = copy_chain(tmp_path)
    add_revision(chain, "0004", "0003", body, extra)
    return ScriptDirectory(str(chain))


@pytest.mark.parametrize("kind,severity,table,column,body", HAZARDS, ids=[f"{h[0]}-{i}" for i, h in enumerate(HAZARDS)])
def test_each_hazard_is_detected_with_its_severity(tmp_path, kind, severity, table, column, body):
    hazards = lint_revisions(chain_with(tmp_path, body), "0003", "head")
    found = [h for h in hazards if h.kind == kind]
    assert found, hazards
    hazard = found[0]
    assert (hazard.revision, hazard.severity, hazard.table, hazard.column) == ("0004", severity, table, column)
    assert hazard.fix and hazard.message and not hazard.acknowledged


def test_likely_rename_names_both_columns(tmp_path):
    body = HAZARDS[2][4]
    [hazard] = [h for h in lint_revisions(chain_with(tmp_path, body), "0003") if h.severity == DATA_LOSS]
    assert hazard.kind == "likely-rename"
    assert "products.title" in hazard.message and "new_column_name='title'" in hazard.fix


def test_drop_and_add_of_unrelated_types_is_not_a_rename(tmp_path):
    body = """
        op.add_column('products', sa.Column('weight', sa.Numeric(8, 3), nullable=True))
        op.drop_column('products', 'name')"""
    kinds = {h.kind for h in lint_revisions(chain_with(tmp_path, body), "0003")}
    assert kinds == {"drop-column"}


def test_safe_revision_reports_nothing(tmp_path):
    assert lint_revisions(chain_with(tmp_path, SAFE), "0003", "head") == []


def test_real_chain_is_clean():
    from tenants.core.settings import PROJECT_ROOT

    assert lint_revisions(ScriptDirectory(str(PROJECT_ROOT / "migrations")), None, "head") == []


@pytest.mark.parametrize("marker", [
    'tenant_portal_acknowledge = {"drop-column:users.last_login_at": "nobody reads it since 2025"}',
    "# tenant-portal: acknowledge drop-column:users.* -- nobody reads it since 2025",
])
def test_acknowledged_hazard_is_reported_as_acknowledged(tmp_path, marker):
    scripts = chain_with(tmp_path, "op.drop_column('users', 'last_login_at')", extra=marker)
    [hazard] = lint_revisions(scripts, "0003")
    assert hazard.acknowledged and hazard.acknowledgement == "nobody reads it since 2025"
    assert gate([hazard]) == []


def test_acknowledgement_without_reason_does_not_count(tmp_path):
    scripts = chain_with(tmp_path, "op.drop_column('users', 'last_login_at')",
                         extra='tenant_portal_acknowledge = {"drop-column:users.last_login_at": ""}')
    [hazard] = lint_revisions(scripts, "0003")
    assert not hazard.acknowledged


def test_revision_that_needs_a_live_database_is_unreviewable(tmp_path):
    body = "rows = op.get_bind().execute(sa.text('SELECT id FROM products')).fetchall()"
    [hazard] = lint_revisions(chain_with(tmp_path, body), "0003")
    assert (hazard.kind, hazard.severity) == ("unreviewable", DATA_LOSS)


def test_unparsable_sql_is_unreviewable(tmp_path):
    [hazard] = lint_revisions(chain_with(tmp_path, "op.execute('FROBNICATE products')"), "0003")
    assert hazard.kind == "unreviewable" and "FROBNICATE" in hazard.statement


def test_sqlite_dialect_keeps_data_loss_and_drops_postgres_locks(tmp_path):
    body = """
        op.create_index('ix_products_name', 'products', ['name'])
        op.drop_column('users', 'last_login_at')"""
    scripts = chain_with(tmp_path, body)
    assert {h.kind for h in lint_revisions(scripts, "0003", dialects=("postgresql",))} == {"index-lock", "drop-column"}
    assert {h.kind for h in lint_revisions(scripts, "0003", dialects=("sqlite",))} == {"drop-column"}


def test_range_covers_only_the_revisions_a_tenant_would_run(tmp_path):
    chain = copy_chain(tmp_path)
    add_revision(chain, "0004", "0003", "op.drop_column('users', 'last_login_at')")
    add_revision(chain, "0005", "0004", "op.create_index('ix_products_name', 'products', ['name'])")
    scripts = ScriptDirectory(str(chain))
    assert [h.revision for h in lint_revisions(scripts, "0003")] == ["0004", "0005"]
    assert [h.revision for h in lint_revisions(scripts, "0004")] == ["0005"]
    assert lint_revisions(scripts, "0005") == []
    assert [h.revision for h in lint_revisions(scripts, "0003", "0004")] == ["0004"]
    with pytest.raises(InvalidRevision):
        lint_revisions(scripts, "nope")


def test_gate_blocks_data_loss_unless_allowed_and_locks_only_when_strict(tmp_path):
    chain = copy_chain(tmp_path)
    add_revision(chain, "0004", "0003", "op.drop_column('users', 'last_login_at')")
    add_revision(chain, "0005", "0004", "op.create_index('ix_products_name', 'products', ['name'])")
    scripts = ScriptDirectory(str(chain))
    hazards = lint_revisions(scripts, "0003")
    assert [h.kind for h in gate(hazards)] == ["drop-column"]
    assert gate(hazards, allow_destructive=True) == []
    assert [h.kind for h in gate(hazards, strict=True)] == ["drop-column", "index-lock"]
    assert [h.kind for h in gate(hazards, allow_destructive=True, strict=True)] == ["index-lock"]

    report = plan_gate(scripts, {"0003", "0005"}, "head")
    assert report.needs_backup(["0004", "0005"]) and not report.needs_backup(["0005"])
    with pytest.raises(GateBlocked) as blocked:
        report.raise_if_blocked()
    assert exit_code_for(blocked.value) == 2 and "drop-column:users.last_login_at" in str(blocked.value)
    plan_gate(scripts, {"0003"}, "head", allow_destructive=True).raise_if_blocked()
    assert plan_gate(scripts, {"0005"}, "head").hazards == []
