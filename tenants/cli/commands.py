"""Every operator command of tenancy, in one list: manage.py adds these and the web app's to the CLI."""

from tenants.cli import fleet, safety, scale, tenant

COMMANDS = [*tenant.COMMANDS, *fleet.COMMANDS, *safety.COMMANDS, *scale.COMMANDS]
