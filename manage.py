#!/usr/bin/env python
"""The operator CLI: Flask's commands (run, db, shell) plus every command of tenancy and the web app."""

from flask.cli import FlaskGroup

from portal import create_app
from portal.cli import COMMANDS as PORTAL_COMMANDS
from tenants.cli.commands import COMMANDS as TENANT_COMMANDS

cli = FlaskGroup(create_app=create_app, help="Tenant Portal operator commands.")
for command in [*TENANT_COMMANDS, *PORTAL_COMMANDS]:
    cli.add_command(command)

if __name__ == "__main__":
    cli()
