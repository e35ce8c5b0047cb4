#!/usr/bin/env python
"""The operator CLI: Flask's commands (run, db, shell) plus every command of tenancy and the web app."""

import click
from flask.cli import FlaskGroup
from flask_migrate.cli import db as db_command

from portal import create_app
from portal.cli import COMMANDS as PORTAL_COMMANDS
from tenants.cli.commands import COMMANDS as TENANT_COMMANDS


class OperatorGroup(FlaskGroup):
    """Flask's group whose command list does not build the web app: every command is registered on it.

    FlaskGroup builds the app to list the commands the app adds (only Flask-Limiter's `limiter`,
    still reachable by name); `--help` then paid for the whole console, and failed without it.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(click.Group.list_commands(self, ctx))


cli = OperatorGroup(create_app=create_app, help="Tenant Portal operator commands.")
for command in [db_command, *TENANT_COMMANDS, *PORTAL_COMMANDS]:
    cli.add_command(command)

if __name__ == "__main__":
    cli()
