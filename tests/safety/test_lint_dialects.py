"""The lint per dialect (SQLite runs the chain) and per direction (downgrade bodies are linted too)."""

from alembic.script import ScriptDirectory

from tenants.core.settings import PROJECT_ROOT
from tenants.safety.gate import plan_gate
from tenants.safety.lint.chain import lint_revisions
from tests.chains import chain_with as chain_dir

NOW_DEFAULT = {"0004": ("0003", "op.add_column('products', sa.Column('created', sa.DateTime(), "
                                "server_default=sa.text('now()'), nullable=True))")}
PLAIN_ALTER = {"0004": ("0003", "op.alter_column('products', 'name', type_=sa.String(100))")}
REBUILD = {"0004": ("0003", "with op.batch_alter_table('roles') as b:\n"
                            "    b.alter_column('name', type_=sa.String(120))")}


def chain_with(tmp_path, revisions) -> ScriptDirectory:  # type: ignore[no-untyped-def]
    return ScriptDirectory(str(chain_dir(tmp_path, revisions)))


def kinds(hazards) -> set[str]:  # type: ignore[no-untyped-def]
    return {h.kind for h in hazards}


def test_a_server_function_sqlite_lacks_is_flagged_for_sqlite_fleets_only(tmp_path):
    scripts = chain_with(tmp_path, NOW_DEFAULT)
    assert kinds(lint_revisions(scripts, "0003", dialects=("sqlite",))) & {"sqlite-fails", "sqlite-function"}
    assert not kinds(lint_revisions(scripts, "0003", dialects=("postgresql",))) & {"sqlite-fails", "sqlite-function"}


def test_an_alter_outside_batch_mode_fails_on_sqlite(tmp_path):
    scripts = chain_with(tmp_path, PLAIN_ALTER)
    hazards = lint_revisions(scripts, "0003", dialects=("postgresql", "sqlite"))
    [hazard] = [h for h in hazards if h.kind == "sqlite-fails"]
    assert hazard.revision == "0004" and "fails on SQLite" in hazard.message


def test_a_rebuild_of_a_table_referenced_with_cascade_is_a_warning(tmp_path):
    scripts = chain_with(tmp_path, REBUILD)
    [hazard] = [h for h in lint_revisions(scripts, "0003", dialects=("sqlite",)) if h.kind == "rebuild-cascade"]
    assert (hazard.revision, hazard.table, hazard.severity) == ("0004", "roles", "lock")
    assert "users_roles" in hazard.message
    assert not plan_gate(scripts, {"0003"}, "head", ("sqlite",)).blocking  # a warning: strict blocks it
    assert plan_gate(scripts, {"0003"}, "head", ("sqlite",), strict=True).blocking


def test_the_real_chain_is_clean_on_both_dialects_once_reviewed():
    scripts = ScriptDirectory(str(PROJECT_ROOT / "migrations"))
    hazards = lint_revisions(scripts, None, "head", dialects=("postgresql", "sqlite"))
    assert [(h.key, h.acknowledged) for h in hazards] == [("rebuild-cascade:roles", True)]


def test_downgrade_bodies_are_linted_in_the_order_they_run():
    from tenants.safety.lint.chain import lint_downgrade

    scripts = ScriptDirectory(str(PROJECT_ROOT / "migrations"))
    hazards = lint_downgrade(scripts, {"0003"}, "0001")
    assert [(h.revision, h.key, h.severity) for h in hazards] == [
        ("0003", "drop-column:roles.console_access", "data-loss"), ("0002", "drop-table:products", "data-loss")]
    assert all(h.message.startswith("downgrade: ") for h in hazards)
    assert lint_downgrade(scripts, {"0001"}, "0001") == []
    assert lint_downgrade(scripts, {None}, "0002") == []
