"""The tenant chain through Flask-Migrate's `db` commands: one script serves every tenant."""

from sqlalchemy import text

from tenants.migrate.lifecycle import create_tenant
from tenants.migrate.migrator import current_revision
from tests.chains import chain_with
from tests.conftest import run_manage


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
    result = run_manage(["db", "upgrade", "-x", "tenant=globex"], env)
    assert result.returncode != 0  # globex has no scratch table: the script really runs there
    assert current_revision(tenancy.storage("globex")) == "0003"


def test_db_upgrade_without_a_tenant_says_how(cli_env, tenancy):
    result = run_manage(["db", "upgrade"], cli_env)
    assert result.returncode != 0
    assert "-x tenant=<slug>" in result.stderr and "Traceback" not in result.stderr


def test_offline_sql_for_one_tenant(cli_env, tenancy):
    create_tenant(tenancy, "acme")
    result = run_manage(["db", "upgrade", "0001:0002", "--sql", "-x", "tenant=acme"], cli_env)
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE products" in result.stdout
    if tenancy.settings.control_url.startswith("postgresql"):
        assert 'SET search_path TO "tenant_acme"' in result.stdout
