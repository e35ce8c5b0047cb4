#!/usr/bin/env python
"""The operator CLI: Flask's commands (run, db, shell, demo) plus the tenant commands."""

from flask.cli import FlaskGroup

from portal import create_app
from portal.staff import register as register_staff
from tenants.cli import register
from tenants.fleet_cli import register as register_fleet
from tenants.safety_cli import register as register_safety
from tenants.scale_cli import register as register_scale

cli = FlaskGroup(create_app=create_app, help="Tenant Portal operator commands.")
register(cli)
register_fleet(cli)
register_safety(cli)
register_staff(cli)
register_scale(cli)

if __name__ == "__main__":
    cli()
