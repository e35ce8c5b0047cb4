"""Alembic environment for the control-plane chain (registry, ledger, staff, audit).

The portal applies this chain in-process (tenants.migrate.control); this file serves
developers writing a new control revision:
`alembic -c migrations/control/alembic.ini revision --autogenerate -m "..."`.
"""

from alembic import context

from tenants.core.control_schema import metadata
from tenants.core.engines import Engines
from tenants.core.settings import TenantSettings

config = context.config


def run_migrations() -> None:
    url = TenantSettings.from_env().control_url
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engines = Engines()
    try:
        with engines.get(url).connect() as connection:
            context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                              compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engines.dispose()


run_migrations()
