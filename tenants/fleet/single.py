"""One tenant through the guarded path: the fleet's runner with a selection of one.

`upgrade-tenant`, `downgrade-tenant` and the console move a single tenant exactly as
`upgrade-all-tenants` moves many: the lint gate on the bodies it will run (downgrades
included), a backup before data loss, the tenant's lock, a run row and a ledger record. Only
the fleet lock is left out: the tenant's own lock keeps two runs of it apart.
"""

from dataclasses import replace

from tenants.core.tenancy import Tenancy
from tenants.fleet.options import RunOptions
from tenants.fleet.report import RunReport
from tenants.fleet.runner import Event
from tenants.fleet.runs import downgrade_tenants, upgrade_tenants
from tenants.migrate.selection import Selection


def move_tenant(tenancy: Tenancy, slug: str, target: str | None, *, downgrade: bool = False,
                options: RunOptions | None = None, on_event: Event | None = None) -> RunReport:
    """Upgrade (or downgrade) one registered tenant to `target` (relative '-N' for downgrades), guarded."""
    single = replace(options or RunOptions(), jobs=1, fleet_lock=False, canary=0)
    run = downgrade_tenants if downgrade else upgrade_tenants
    return run(tenancy, Selection(tenants=(slug,)), target, single, on_event)
