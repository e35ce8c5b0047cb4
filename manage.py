#!/usr/bin/env python
"""The operator CLI: Flask's commands (run, db, shell) plus every command of tenancy and the web app.

A tenant command (upgrade-all-tenants, tenant-versions, create-tenant, ...) runs in a group of
tenancy's commands alone: it needs neither Flask nor the web app, and without their imports
every run, a scheduled no-op included, starts about 0.3 s sooner; it also ends without the
interpreter's teardown (run_script). Every other command and `--help` go through the
whole CLI.
"""

import atexit
import functools
import gc
import os
import sys

import click


@functools.cache
def tenant_commands() -> tuple[click.Command, ...]:
    """Return tenancy's commands, imported with the garbage collector paused, then frozen out of it.

    Their imports (SQLAlchemy, Alembic, the control plane's tables) make about 70,000 objects the
    collector tracks, and no garbage: its passes over them while they are made are pure cost,
    about 40 ms of every tenant command's start-up (a tenth of these imports, measured here).
    They live as long as the process, so they are frozen afterwards: no collection walks them
    while they stay frozen (the fleet pool's collection before it forks: 20 ms with them, 0.4 ms
    without; the pool unfreezes everything when it closes).
    """
    # Mako (Alembic's template engine) loads Pygments, when installed (rich brings it), only to
    # colour its own HTML error pages, which no command shows: 45 ms of every command's start-up.
    # Without the plugin Mako uses its plain fallback.
    sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]
    gc.disable()
    try:
        from tenants.cli.commands import COMMANDS
    finally:
        gc.enable()
    gc.freeze()
    return tuple(COMMANDS)


def operator_cli() -> click.Group:
    """Return the whole CLI: Flask's group with every command of tenancy and the web app."""
    from flask.cli import FlaskGroup
    from flask_migrate.cli import db as db_command

    from portal import create_app
    from portal.cli import COMMANDS as PORTAL_COMMANDS

    class OperatorGroup(FlaskGroup):
        """Flask's group whose command list does not build the web app: every command is registered on it.

        FlaskGroup builds the app to list the commands the app adds (only Flask-Limiter's `limiter`,
        still reachable by name); `--help` then paid for the whole console, and failed without it.
        """

        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted(click.Group.list_commands(self, ctx))

    cli = OperatorGroup(create_app=create_app, help="Tenant Portal operator commands.")
    for command in [db_command, *tenant_commands(), *PORTAL_COMMANDS]:
        cli.add_command(command)
    return cli


def exit_status(code: object) -> int:
    """Return the process status Python gives `sys.exit(code)`: None is 0, a message is 1 (printed before)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def end_without_teardown(status: list[int]) -> None:
    """At exit, once `status` holds the status: flush the standard streams and end the process now.

    Registered before anything else registers an exit handler, so it runs after all of them
    (logging's flush, multiprocessing's and tempfile's clean-ups), and after Python has waited
    for the process's other threads. What it skips is the interpreter's teardown, which frees
    every object and module one by one: 0.1 to 0.3 s after a fleet run's last tenant on this
    machine, and its memory and files go back to the system at exit anyway. With `status`
    empty (an exception other than SystemExit, a Flask command) the usual exit follows.
    """
    if not status:
        return
    code = status[0]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: Python's own exit gives status 120 then
            code = 120
    os._exit(code)


def is_tenant_command(args: list[str]) -> bool:
    """Return whether `args` name one of tenancy's commands."""
    return bool(args) and args[0] in {command.name for command in tenant_commands()}


def main(args: list[str]) -> None:
    """Run the command `args` names, through tenancy's commands alone when it is one of them."""
    if is_tenant_command(args):
        cli = click.Group(commands=tenant_commands(), help="Tenant Portal operator commands.")
    else:
        cli = operator_cli()
    cli(args=args, prog_name="manage.py")


def run_script(args: list[str]) -> None:
    """The script's entry: run main(args), then end a tenant command's process without teardown.

    Only for a process that ends with the command (end_without_teardown ends it): code that
    runs a command and goes on calls main().
    """
    status: list[int] = []
    atexit.register(end_without_teardown, status)  # before any import registers a handler: it runs last
    try:
        main(args)
    except SystemExit as e:
        if is_tenant_command(args):
            status.append(exit_status(e.code))
        raise


if __name__ == "__main__":
    run_script(sys.argv[1:])
