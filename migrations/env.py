"""Alembic environment for the tenant chain: every run targets exactly one tenant.

- `manage.py db -x tenant=<slug> <command>` picks the tenant from the registry (read-only commands and
  autogenerate; `db upgrade/downgrade/stamp` are refused: they would move a tenant past the guard);
- in-process callers pass `config.attributes["connection"]` (already bound to the tenant,
  in a transaction they own) and `config.attributes["storage"]`.
On PostgreSQL the run's search_path is the tenant's schema and `alembic_version` lives there;
autogenerate therefore writes unqualified names, so one script serves every tenant.
"""

import logging
from logging.config import fileConfig

import click
from alembic import context
from alembic.util import CommandError
from flask import current_app

from portal.models import TenantModel
from tenants.core.errors import TenantError
from tenants.core.names import search_path_sql
from tenants.migrate.migrator import alembic_options

config = context.config
if config.config_file_name and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")


def include_name(name, type_, parent_names):  # type: ignore[no-untyped-def]
    """Keep Alembic's own version table out of autogenerate's comparison."""
    return not (type_ == "table" and name == "alembic_version")


def process_revision_directives(context_, revision, directives):  # type: ignore[no-untyped-def]
    """Write no empty revision when autogenerate finds no change."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def tenant_storage():  # type: ignore[no-untyped-def]
    """Return the storage named by `-x tenant=<slug>`."""
    if "storage" in config.attributes:
        return config.attributes["storage"]
    slug = context.get_x_argument(as_dictionary=True).get("tenant")
    if not slug:
        raise CommandError("name the tenant to run against: 'manage.py db -x tenant=<slug> <command>' "
                           "(to upgrade every tenant use 'manage.py upgrade-all-tenants')")
    try:
        return current_app.extensions["tenancy"].storage(slug)
    except TenantError as e:  # Flask-Migrate prints CommandError as one line
        raise CommandError(str(e)) from e


def configure_args(storage) -> dict:  # type: ignore[no-untyped-def]
    args = {
        **alembic_options(storage),
        "target_metadata": TenantModel.metadata,
        "include_name": include_name,
        "compare_type": True,
        "process_revision_directives": process_revision_directives,
    }
    args.update(current_app.extensions["migrate"].configure_args)
    return args


def run_migrations_offline() -> None:
    storage = tenant_storage()
    context.configure(url=storage.url, literal_binds=True, **configure_args(storage))
    with context.begin_transaction():
        if storage.dialect == "postgresql":
            context.execute(search_path_sql(storage.slug))
        context.run_migrations()


# Subcommands of `db` that would change a tenant's revision outside the portal's guard, and what to use.
GUARDED = {"upgrade": "upgrade-tenant SLUG [--to REV]", "downgrade": "downgrade-tenant SLUG --to REV",
           "stamp": "restore-tenant SLUG BACKUP, or upgrade-tenant / downgrade-tenant"}


def refuse_unguarded_moves() -> None:
    """Exit 2 for `db upgrade/downgrade/stamp`: a tenant's revision moves only through the guarded commands."""
    command = click.get_current_context(silent=True)
    name = command.info_name if command is not None else None
    if name in GUARDED:
        click.echo(f"Error: 'db {name}' would move a tenant past the portal's guard (lint gate, backup, tenant "
                   f"lock, ledger); nothing was changed: use 'manage.py {GUARDED[name]}'", err=True)
        raise SystemExit(2)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        refuse_unguarded_moves()
    storage = tenant_storage()
    if connection is not None:
        context.configure(connection=connection, **configure_args(storage))
        with context.begin_transaction():
            context.run_migrations()
        return
    try:
        with storage.begin(exclusive=True, revisions=True) as connection:
            context.configure(connection=connection, **configure_args(storage))
            with context.begin_transaction():
                context.run_migrations()
    except TenantError as e:  # e.g. a foreign key broken by the revisions: rolled back; one line, no traceback
        raise CommandError(str(e)) from e


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
