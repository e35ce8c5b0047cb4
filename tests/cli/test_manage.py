"""manage.py lists its commands without building the web app."""

from click.testing import CliRunner

from tests.conftest import run_manage


def test_help_lists_every_command_without_building_the_app(cli_env):
    # Production without SECRET_KEY: building the app would fail, listing the commands must not.
    env = {**cli_env, "PORTAL_ENV": "production", "SECRET_KEY": ""}
    result = run_manage(["--help"], env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    for command in ("upgrade-all-tenants", "verify-chain", "createsuperuser", "demo", "db", "run"):
        assert f"  {command} " in result.stdout
    assert run_manage(["upgrade-all-tenants", "--help"], env).returncode == 0


def test_tenant_commands_run_without_building_the_app(cli_env, monkeypatch):
    import manage

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a tenant command built the web app")

    monkeypatch.setattr(manage.cli, "create_app", refuse)
    runner = CliRunner(env=cli_env)
    for args in (["create-tenant", "acme"], ["list-tenants", "--json"], ["tenant-versions", "--json"],
                 ["upgrade-all-tenants", "--json"], ["upgrade-tenant", "acme"], ["for-each-tenant", "analyze"],
                 ["downgrade-tenants", "--to", "0002", "--dry-run", "--allow-destructive"], ["check-tenants"],
                 ["backups"], ["migrate-control"]):
        result = runner.invoke(manage.cli, args)
        assert result.exit_code == 0 and result.exception is None, (args, result.output, result.exception)
