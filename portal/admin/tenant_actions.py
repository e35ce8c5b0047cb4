"""The Tenants view's "upgrade selected to head" action: the fleet runner, as the CLI uses it."""

from dataclasses import dataclass

from tenants.core.errors import TenantError
from tenants.core.tenancy import Tenancy
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import upgrade_tenants
from tenants.migrate.selection import Selection
from tenants.safety.errors import GateBlocked
from tenants.safety.lint.hazards import format_hazard


@dataclass(frozen=True)
class UpgradeReport:
    """What happened to one selected tenant."""

    slug: str
    ok: bool
    message: str


def upgrade_selected(tenancy: Tenancy, slugs: list[str], started_by: str | None = None) -> list[UpgradeReport]:
    """Upgrade the tenants to head through upgrade_tenants (same gate, locks, ledger and run record).

    The request's own process does the work (jobs=1): a web worker must not fork a pool.
    """
    if not slugs:
        return []
    try:
        report = upgrade_tenants(tenancy, Selection(tenants=tuple(slugs)), "head",
                                 RunOptions(jobs=1, started_by=started_by))
    except GateBlocked as e:  # the console has no --allow-destructive: a reviewed run belongs to the CLI
        hazards = "; ".join(format_hazard(h) for h in e.hazards)
        message = (f"refused, no tenant was touched: {hazards}. Review the revision, then acknowledge the "
                   "hazard in it or run upgrade-all-tenants --allow-destructive")
        return [UpgradeReport(slug, False, message) for slug in slugs]
    except TenantError as e:  # refused as a whole (bad selection, heads): nothing was touched
        return [UpgradeReport(slug, False, str(e).splitlines()[0]) for slug in slugs]
    reports = [UpgradeReport(item.slug, True, f"already at {item.current}") for item in report.plan.at_target]
    for result in report.final().values():
        if result.status == "ok":
            message = f"{result.from_revision or 'base'} -> {result.to_revision} ({result.duration_ms:.0f} ms)"
            reports.append(UpgradeReport(result.slug, True, message))
        else:
            reports.append(UpgradeReport(result.slug, False, f"{result.status}: {result.error}"))
    reports += [UpgradeReport(slug, False, "not started") for slug in report.not_started]
    return sorted(reports, key=lambda r: r.slug)
