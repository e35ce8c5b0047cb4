#!/usr/bin/env python
"""The operator CLI: Flask's commands (run, db, shell, demo) plus the tenant commands."""

from flask.cli import FlaskGroup

from portal import create_app
from portal.staff import register as register_staff
from tenants.cli import register

cli = FlaskGroup(create_app=create_app, help="Tenant Portal operator commands.")
register(cli)
register_staff(cli)

if __name__ == "__main__":
    cli()
