"""The Tenancy of one CLI invocation, built from the environment without the web app."""

import click

from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy


def get_tenancy() -> Tenancy:
    """Return this invocation's Tenancy, built once from the environment and closed at exit."""
    root = click.get_current_context().find_root()
    if "tenancy" not in root.meta:
        tenancy = Tenancy(TenantSettings.from_env())
        root.meta["tenancy"] = tenancy
        root.call_on_close(tenancy.close)
    return root.meta["tenancy"]
