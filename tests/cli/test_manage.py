"""manage.py lists its commands without building the web app."""

from tests.conftest import run_manage


def test_help_lists_every_command_without_building_the_app(cli_env):
    # Production without SECRET_KEY: building the app would fail, listing the commands must not.
    env = {**cli_env, "PORTAL_ENV": "production", "SECRET_KEY": ""}
    result = run_manage(["--help"], env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    for command in ("upgrade-all-tenants", "verify-chain", "createsuperuser", "demo", "db", "run"):
        assert f"  {command} " in result.stdout
    assert run_manage(["upgrade-all-tenants", "--help"], env).returncode == 0
