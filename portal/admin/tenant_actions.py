"""The Tenants view's "upgrade selected to head" action, in one function.

MERGE NOTE: this calls tenants.lifecycle.move_tenant per tenant for now. When the fleet
runner (`upgrade-all-tenants`) lands, switch the body to the runner's library function so
the console and the CLI run exactly the same code (same locks, ledger, run record).
"""

from dataclasses import dataclass

from tenants.errors import TenantError
from tenants.lifecycle import move_tenant
from tenants.runtime import Tenancy


@dataclass(frozen=True)
class UpgradeReport:
    """What happened to one selected tenant."""

    slug: str
    ok: bool
    message: str


def upgrade_selected(tenancy: Tenancy, slugs: list[str], started_by: str | None = None) -> list[UpgradeReport]:
    """Upgrade each tenant to head; one tenant's failure never stops the others."""
    reports = []
    for slug in slugs:
        try:
            outcome = move_tenant(tenancy, slug, "head", started_by=started_by)
        except TenantError as e:
            reports.append(UpgradeReport(slug, False, str(e)))
            continue
        if outcome.applied:
            message = (f"{outcome.from_revision or 'base'} -> {outcome.to_revision} "
                       f"({len(outcome.applied)} revisions, {outcome.duration_ms:.0f} ms)")
        else:
            message = f"already at {outcome.to_revision}"
        reports.append(UpgradeReport(slug, True, message))
    return reports
