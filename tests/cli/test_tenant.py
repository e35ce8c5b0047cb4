"""The operator commands of the core, through CliRunner and as real processes."""

import json

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner

from manage import operator_cli
from tenants.fleet.create import create_tenant
from tenants.migrate.migrator import current_revision
from tests.conftest import run_manage
from tests.core.test_names import BAD_SLUGS

cli = operator_cli()  # the whole CLI, as `manage.py` builds it


def test_create_list_upgrade_drop_through_cli_runner(runner, tenancy):
    result = runner.invoke(cli, ["create-tenant", "acme", "--name", "Acme Corp"])
    assert result.exit_code == 0, result.output
    assert "created tenant acme" in result.output
    result = runner.invoke(cli, ["list-tenants", "--json"])
    rows = json.loads(result.output)
    assert [(r["slug"], r["status"], r["revision"], r["at_head"]) for r in rows] == [("acme", "active", "0003", True)]
    down = runner.invoke(cli, ["downgrade-tenant", "acme", "--to", "0002", "--yes", "--allow-destructive"])
    assert down.exit_code == 0, down.output
    assert current_revision(tenancy.storage("acme")) == "0002"
    result = runner.invoke(cli, ["list-tenants"])
    assert "acme" in result.output and "0002" in result.output
    assert runner.invoke(cli, ["upgrade-tenant", "acme"]).exit_code == 0
    assert current_revision(tenancy.storage("acme")) == "0003"
    result = runner.invoke(cli, ["drop-tenant", "acme", "--yes"])
    assert result.exit_code == 0 and tenancy.registry.find("acme") is None


@pytest.mark.parametrize("slug", [s for s in BAD_SLUGS if isinstance(s, str)])
def test_bad_slugs_exit_2_with_one_line(runner, slug):
    result = runner.invoke(cli, ["create-tenant", slug])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "invalid tenant name" in result.output


@pytest.mark.empty_control  # the command migrates an empty control database, not a template copy
def test_migrate_control_reports_head(runner, settings):
    result = runner.invoke(cli, ["migrate-control"])
    head = ScriptDirectory(str(settings.control_revision_dir)).get_current_head()
    assert result.exit_code == 0 and head in result.output
    assert f"control plane: empty -> {head}" in result.output


@pytest.mark.parametrize("args, message", [
    (["upgrade-tenant", "nosuch"], "unknown tenant 'nosuch'"),
    (["drop-tenant", "nosuch", "--yes"], "unknown tenant 'nosuch'"),
    (["upgrade-tenant", "acme", "--to", "zzz"], "unknown revision 'zzz'"),
    (["upgrade-tenant", "acme", "--to", "0001"], "use downgrade-tenant"),
    (["create-tenant", "acme"], "already exists"),
    (["drop-tenant", "acme"], "without confirmation: pass --yes"),
    (["downgrade-tenant", "acme", "--to", "0001"], "without confirmation: pass --yes"),
])
def test_bad_input_exits_2_and_changes_nothing(runner, tenancy, args, message):
    create_tenant(tenancy, "acme")
    result = runner.invoke(cli, args)  # the same `cli` as manage.py; exit 2 of a real process: the test below
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert tenancy.registry.get("acme").status == "active"
    assert current_revision(tenancy.storage("acme")) == "0003"


@pytest.mark.parametrize("backend", ["sqlite"])  # the process's side of it; both backends: the test above
def test_bad_input_exits_2_as_a_real_process(cli_env, tenancy):
    create_tenant(tenancy, "acme")
    result = run_manage(["drop-tenant", "acme"], cli_env)  # no terminal on stdin: refused, not asked
    assert result.returncode == 2, result.stderr
    assert "without confirmation: pass --yes" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert tenancy.registry.get("acme").status == "active"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_unreachable_control_database_exits_3_without_traceback(cli_env):
    env = {**cli_env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/nowhere"}
    result = run_manage(["list-tenants"], env)  # a real process once; the same `cli` in-process for the rest
    assert result.returncode == 3, result.stderr
    assert "cannot reach database postgresql" in result.stderr and "127.0.0.1:9/nowhere" in result.stderr
    assert "Traceback" not in result.stderr
    for args in (["create-tenant", "acme"], ["migrate-control"]):
        invoked = CliRunner(env=env).invoke(cli, args)
        assert invoked.exit_code == 3, invoked.output
        assert "cannot reach database postgresql" in invoked.stderr and "127.0.0.1:9/nowhere" in invoked.stderr
        assert "Traceback" not in invoked.output


def test_unreachable_tenant_database_exits_3_and_registers_nothing(cli_env, tenancy):
    result = run_manage(["create-tenant", "acme", "--database-url",
                         "postgresql://postgres:s3cret@127.0.0.1:9/nowhere"], cli_env)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr, "passwords never reach the output"
    assert tenancy.registry.find("acme") is None


@pytest.mark.parametrize("args", [["create-tenant", "acme"], ["create-tenant", "acme", "globex"]])
def test_a_tenant_folder_that_cannot_be_made_exits_3_with_one_line(cli_env, tenancy, tmp_path, args):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where PORTAL_TENANT_DIR should be")
    result = CliRunner(env={**cli_env, "PORTAL_TENANT_DIR": str(blocker)}).invoke(cli, args)
    assert result.exit_code == 3, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.startswith("Error: cannot use the folder ") and result.stderr.count("\n") == 1
    assert tenancy.registry.find("acme") is None and tenancy.registry.find("globex") is None
