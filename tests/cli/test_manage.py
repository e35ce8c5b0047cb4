"""manage.py lists its commands without building the web app; a tenant command does not even import Flask."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from tests.conftest import PROJECT_ROOT, run_manage


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

    cli = manage.operator_cli()
    monkeypatch.setattr(cli, "create_app", refuse)
    runner = CliRunner(env=cli_env)
    for args in (["create-tenant", "acme"], ["list-tenants", "--json"], ["tenant-versions", "--json"],
                 ["upgrade-all-tenants", "--json"], ["upgrade-tenant", "acme"], ["for-each-tenant", "analyze"],
                 ["downgrade-tenants", "--to", "0002", "--dry-run", "--allow-destructive"], ["check-tenants"],
                 ["backups"], ["migrate-control"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0 and result.exception is None, (args, result.output, result.exception)


def _imported(args: list[str], env: dict[str, str]) -> set[str]:
    """Run `python -X importtime manage.py ARGS` and return the modules it imported (-X importtime names each)."""
    result = subprocess.run([sys.executable, "-X", "importtime", str(PROJECT_ROOT / "manage.py"), *args],
                            env={**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (args, result.stderr[-2000:])
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def test_tenant_commands_import_neither_flask_nor_the_web_app(cli_env):
    web = ("flask", "portal", "flask_migrate", "flask_limiter", "werkzeug")
    for args in (["tenant-versions", "--json"], ["upgrade-all-tenants", "--json"], ["upgrade-all-tenants", "--help"]):
        modules = _imported(args, cli_env)
        assert "tenants.cli.fleet" in modules
        assert not {m for m in modules if m.split(".")[0] in web}, args
        assert "mako.template" in modules and "pygments" not in modules, args  # Mako without its colouring plugin
    assert {"flask", "portal.cli"} <= _imported(["--help"], cli_env)  # any other command: the whole CLI


# Runs manage.run_script (the script's entry) in a real process, with an exit handler registered
# during the command (as a library would register one) that leaves a mark and writes to stdout
# without flushing it.
_ENDING = """
import atexit, functools, sys
import manage

imported = manage.tenant_commands


@functools.cache  # as the real one: the handler is registered once
def commands():  # type: ignore[no-untyped-def]
    found = imported()
    atexit.register(lambda: open(sys.argv[1], "w").close() or sys.stdout.write("\\nlast words"))
    return found


manage.tenant_commands = commands
manage.run_script(sys.argv[2:])
"""


def _ending(tmp_path, env: dict[str, str], args: list[str]) -> tuple[subprocess.CompletedProcess, bool]:
    """Run `args` through manage.run_script in a real process; return its result and whether its exit handler ran."""
    marker = tmp_path / "exit-handler-ran"
    marker.unlink(missing_ok=True)
    inherited = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}  # buffered, as usual
    result = subprocess.run([sys.executable, "-c", _ENDING, str(marker), *args],
                            env={**inherited, **env, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    return result, marker.exists()


def test_a_tenant_command_ends_after_its_exit_handlers_with_its_output_whole(cli_env, tmp_path):
    for slug in ("acme", "globex", "initech"):
        assert run_manage(["create-tenant", slug], cli_env).returncode == 0
    result, handled = _ending(tmp_path, cli_env, ["tenant-versions", "--json"])
    assert result.returncode == 0 and handled, result.stderr
    # Block-buffered into a pipe: the command's output and the handler's unflushed line both arrive.
    output, last = result.stdout.rsplit("\n", 1)
    assert [row["slug"] for row in json.loads(output)] == ["acme", "globex", "initech"] and last == "last words"


def test_a_tenant_command_keeps_its_exit_status_and_message(cli_env, tmp_path):
    result, handled = _ending(tmp_path, cli_env, ["upgrade-all-tenants", "--jobs", "0"])
    assert (result.returncode, result.stderr.strip()) == (2, "Error: --jobs must be at least 1, not 0") and handled
    result, handled = _ending(tmp_path, {**cli_env, "PORTAL_PLAN_PAGE": "abc"}, ["tenant-versions"])
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "PORTAL_PLAN_PAGE" in result.stderr
    for args, status in ((["upgrade-all-tenants", "--no-such-option"], 2), (["list-tenants", "--help"], 0),
                         (["--help"], 0)):  # the last through Flask's group, which exits the usual way
        result, handled = _ending(tmp_path, cli_env, args)
        assert (result.returncode, handled) == (status, True), (args, result.stderr)
    assert "upgrade-all-tenants" in result.stdout and result.stdout.endswith("last words")


def test_a_process_that_runs_a_command_and_goes_on_keeps_its_own_exit(cli_env):
    # main() is what code other than the script calls: it must not end that process for it.
    script = ("import sys, manage\ntry:\n    manage.main(['upgrade-all-tenants', '--jobs', '0'])\n"
              "except SystemExit as e:\n    print('command exited', e.code)\nsys.exit(7)\n")
    env = {**os.environ, **cli_env, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert (result.returncode, result.stdout) == (7, "command exited 2\n"), result.stderr
