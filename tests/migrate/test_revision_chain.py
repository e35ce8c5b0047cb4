"""The tenant chain through Flask-Migrate's `db` commands: one script serves every tenant."""

import pytest
from sqlalchemy import select, text

from tenants.core.control_schema import migration_runs
from tenants.fleet.create import create_tenant
from tenants.fleet.options import RunOptions
from tenants.fleet.single import move_tenant
from tenants.migrate.migrator import current_revision
from tests.chains import chain_with
from tests.conftest import run_manage


@pytest.mark.slow
def test_autogenerate_against_one_tenant_writes_unqualified_names(tenancy, cli_env, tmp_path):
    chain = chain_with(tmp_path, {})
    env = {**cli_env, "PORTAL_REVISION_DIR": str(chain)}
    create_tenant(tenancy, "acme")
    storage = tenancy.storage("acme")
    with storage.begin() as conn:  # drift the tenant so autogenerate has something to write
        conn.execute(text("CREATE TABLE scratch (id INTEGER PRIMARY KEY)"))
    result = run_manage(["db", "migrate", "-x", "tenant=acme", "-m", "drop scratch", "--rev-id", "0004"], env)
    assert result.returncode == 0, result.stderr
    script = (chain / "versions" / "0004_drop_scratch.py").read_text()
    assert "op.drop_table('scratch')" in script
    assert "tenant_acme" not in script and "schema='" not in script
    assert "alembic_version" not in script
    # the new script serves another tenant too
    create_tenant(tenancy, "globex")
    result = run_manage(["upgrade-tenant", "globex"], env)
    assert result.returncode == 2 and "drop-table:scratch" in result.stderr  # the gate reads what it would run
    result = run_manage(["upgrade-tenant", "globex", "--allow-destructive"], env)
    assert result.returncode == 1  # globex has no scratch table: the script really runs there
    assert current_revision(tenancy.storage("globex")) == "0003"


def test_db_without_a_tenant_says_how(cli_env, tenancy):
    result = run_manage(["db", "current"], cli_env)
    assert result.returncode != 0
    assert "'manage.py db -x tenant=<slug> <command>'" in result.stderr and "Traceback" not in result.stderr


def test_the_hinted_order_works_for_commands_without_their_own_x_option(cli_env, tenancy):
    create_tenant(tenancy, "acme")
    result = run_manage(["db", "-x", "tenant=acme", "current"], cli_env)
    assert result.returncode == 0, result.stderr
    assert tenancy.head() in result.stdout


@pytest.mark.parametrize("args", [
    ["db", "upgrade", "-x", "tenant=acme"], ["db", "-x", "tenant=acme", "upgrade", "head"],
    ["db", "downgrade", "0002", "-x", "tenant=acme"], ["db", "-x", "tenant=acme", "stamp", "0001"],
    ["db", "upgrade"],
])
@pytest.mark.slow
def test_revision_changing_passthrough_is_refused_and_changes_nothing(cli_env, tenancy, args):
    create_tenant(tenancy, "acme")
    move_tenant(tenancy, "acme", "0002", downgrade=True, options=RunOptions(allow_destructive=True))
    runs = len(ledger_runs(tenancy))
    result = run_manage(args, cli_env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "past the portal's guard" in result.stderr and "Traceback" not in result.stderr
    assert current_revision(tenancy.storage("acme")) == "0002"
    assert len(ledger_runs(tenancy)) == runs


def test_offline_sql_for_one_tenant(cli_env, tenancy):
    create_tenant(tenancy, "acme")
    result = run_manage(["db", "upgrade", "0001:0002", "--sql", "-x", "tenant=acme"], cli_env)
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE products" in result.stdout
    if tenancy.settings.control_url.startswith("postgresql"):
        assert 'SET search_path TO "tenant_acme"' in result.stdout


def ledger_runs(tenancy) -> list:  # type: ignore[no-untyped-def]
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(migration_runs.c.id)).all()
