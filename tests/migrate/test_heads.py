"""Two unmerged heads: the moving commands refuse with one line that says how to merge; the views keep working."""

import json
from dataclasses import replace

import pytest

from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.migrate.migrator import current_revision
from tests.chains import chain_with
from tests.conftest import run_manage

TWO_HEADS = {
    "0004a": ("0003", "op.add_column('products', sa.Column('weight', sa.Integer(), nullable=True))"),
    "0004b": ("0003", "op.add_column('users', sa.Column('nickname', sa.String(40), nullable=True))"),
}


@pytest.fixture
def branched(settings, cli_env, tmp_path):  # type: ignore[no-untyped-def]
    """A tenant at 0003 and a chain whose 0004a and 0004b both follow 0003, unmerged."""
    current = Tenancy(settings)
    create_tenant(current, "acme")
    current.close()
    chain = chain_with(tmp_path, TWO_HEADS)
    tenancy = Tenancy(replace(settings, revision_dir=chain))
    yield tenancy, {**cli_env, "PORTAL_REVISION_DIR": str(chain)}
    tenancy.close()


@pytest.mark.parametrize("args", [
    ["upgrade-all-tenants"], ["upgrade-tenant", "acme"], ["create-tenant", "globex"], ["lint-migrations"],
    ["upgrade-all-tenants", "--dry-run"],
])
@pytest.mark.slow
def test_moving_commands_name_both_heads_and_how_to_merge(branched, args):
    tenancy, env = branched
    result = run_manage(args, env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "0004a, 0004b" in result.stderr and "db merge heads" in result.stderr
    assert current_revision(tenancy.storage("acme")) == "0003"
    assert tenancy.registry.find("globex") is None


@pytest.mark.slow
def test_views_keep_working_and_show_the_heads(branched):
    _tenancy, env = branched
    versions = run_manage(["tenant-versions", "--json"], env)
    assert versions.returncode == 0, versions.stderr
    [row] = json.loads(versions.stdout)
    assert (row["slug"], row["revision"], row["head"], row["pending"]) == ("acme", "0003", "0004a, 0004b", None)
    listed = run_manage(["list-tenants", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["revision"], row["head"], row["at_head"]) == ("0003", "0004a, 0004b", False)
    plain = run_manage(["tenant-versions"], env)
    assert plain.returncode == 0 and "head 0004a, 0004b" in plain.stdout, plain.stdout + plain.stderr


@pytest.mark.slow
def test_a_downgrade_dry_run_is_planned_without_a_head(branched):
    _tenancy, env = branched
    result = run_manage(["downgrade-tenants", "--to", "0002", "--dry-run", "--allow-destructive"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 pending" in result.stdout and "Traceback" not in result.stderr
