"""Choose the tenants of a run and compute, from one bulk read, what each of them needs.

Nothing here changes a tenant. A plan lists, per tenant, its current revision and the
revisions to run, and flags the revisions that cannot run inside a transaction.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import ScriptDirectory

from tenants.core.errors import InvalidUsage, TenantNotFound
from tenants.core.ledger import last_results
from tenants.core.registry import Tenant
from tenants.core.tenancy import Tenancy
from tenants.migrate import driver
from tenants.migrate.versions import check_registry_not_lost, read_versions

# Last results that `--only-failed` picks up again: the tenant did not reach its target.
FAILED_STATUSES = frozenset({"failed", "timeout", "unreachable", "busy", "drifted"})

# A revision whose source says this cannot share the tenant's transaction.
_OUTSIDE_TRANSACTION = re.compile(r"concurrently|autocommit_block", re.IGNORECASE)


@dataclass(frozen=True)
class Selection:
    """Which tenants a run covers: all active ones unless named; minus skipped ones."""

    tenants: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    only_failed: bool = False


@dataclass(slots=True)  # slots: a run holds one per tenant
class TenantPlan:
    """One tenant's part of a run; tenants at the same revision share one `steps` and one `outside_transaction` list."""

    tenant: Tenant
    status: str  # pending | at-target | error
    current: str | None = None
    steps: list[str] = field(default_factory=list)
    outside_transaction: list[str] = field(default_factory=list)
    error: str | None = None
    error_status: str = "failed"  # the result an error is recorded as: failed | unreachable | drifted

    @property
    def slug(self) -> str:
        return self.tenant.slug


@dataclass
class Plan:
    """What a run will do: per-tenant plans, plus the tenants it leaves out and why."""

    kind: str
    target: str | None
    head: str | None
    items: list[TenantPlan]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def pending(self) -> list[TenantPlan]:
        return [item for item in self.items if item.status == "pending"]

    @property
    def at_target(self) -> list[TenantPlan]:
        return [item for item in self.items if item.status == "at-target"]

    @property
    def errors(self) -> list[TenantPlan]:
        return [item for item in self.items if item.status == "error"]


def select_tenants(tenancy: Tenancy, selection: Selection, *,
                   migrations: bool = True) -> tuple[list[Tenant], list[tuple[str, str]]]:
    """Return (tenants to run, [(slug, why left out)]); unknown slugs raise TenantNotFound.

    `--only-failed` looks at each tenant's last migration result (`migrations`), or at its
    last maintenance result for a maintenance task: one kind of run never hides the other's failure.
    """
    everyone = {tenant.slug: tenant for tenant in tenancy.registry.all()}
    check_registry_not_lost(tenancy, list(everyone.values()))
    unknown = [slug for slug in (*selection.tenants, *selection.skip) if slug not in everyone]
    if unknown:
        raise TenantNotFound(f"unknown tenant {unknown[0]!r}: see 'manage.py list-tenants'")
    named = set(selection.tenants)
    skipped: list[tuple[str, str]] = []
    chosen: list[Tenant] = []
    for slug, tenant in everyone.items():
        if named and slug not in named:
            continue
        if slug in selection.skip:
            skipped.append((slug, "--skip-tenant"))
        elif tenant.status != "active" and slug not in named:
            skipped.append((slug, f"{tenant.status}: name it with --tenant to include it"))
        else:
            chosen.append(tenant)
    if selection.only_failed:
        results = last_results(tenancy.control_engine, migrations=migrations)
        failed = {slug for slug, row in results.items() if row["status"] in FAILED_STATUSES}
        skipped += [(t.slug, "last result was not a failure") for t in chosen if t.slug not in failed]
        chosen = [t for t in chosen if t.slug in failed]
    return chosen, skipped


def runs_outside_transaction(scripts: ScriptDirectory, revision: str) -> bool:
    """Return whether a revision must run on its own, outside the tenant's transaction.

    A revision says so with `run_in_transaction = False`; without that flag, a source that
    mentions CONCURRENTLY or autocommit_block is taken to need it.
    """
    script = scripts.get_revision(revision)
    flag = getattr(script.module, "run_in_transaction", None)
    if flag is not None:
        return not flag
    return bool(_OUTSIDE_TRANSACTION.search(Path(script.path).read_text()))


def behind_ledger(scripts: ScriptDirectory, slug: str, live: str | None, recorded: str | None) -> str | None:
    """Return why a tenant whose live revision is below what the ledger recorded must not be upgraded, or None.

    Such a tenant was emptied, replaced or restored behind the portal's back: upgrading it from
    its live revision would rebuild it and report ok over lost data.
    """
    if recorded is None or recorded == live:
        return None
    if not set(driver.split_heads(recorded)) <= {s.revision for s in scripts.walk_revisions()}:
        return None
    if not set(driver.split_heads(live)) <= driver.ancestors(scripts, recorded):
        return None  # ahead of the ledger (a run killed after its commit): the run corrects the ledger
    return (f"drifted: its alembic_version is {live or 'base'} but the ledger recorded {recorded}; it was emptied, "
            f"replaced or restored outside the portal: restore it (restore-tenant {slug} BACKUP) or accept its "
            f"live state (upgrade-tenant {slug} --accept-live)")


def plan_migration(tenancy: Tenancy, tenants: list[Tenant], target: str | None, *, downgrade: bool = False,
                   skipped: list[tuple[str, str]] | None = None,
                   ledger: dict[str, str | None] | None = None) -> Plan:
    """Read every tenant's revision in bulk and compute its pending revisions towards `target`.

    With the ledger's recorded revisions, an upgrade refuses (as `drifted`) each tenant found
    below what the ledger recorded.
    """
    scripts = tenancy.scripts
    known = {script.revision for script in scripts.walk_revisions()}
    reads = read_versions(tenancy, tenants)
    outside: dict[str, bool] = {}
    by_current: dict[str | None, tuple[str | None, str, list[str], list[str], str | None]] = {}
    newer: set[str | None] = set()  # revisions past an upgrade's target

    def steps_from(current: str | None) -> tuple[str, list[str], str | None]:
        if current == target:
            return "at-target", [], None
        unknown = [head for head in driver.split_heads(current) if head not in known]
        if unknown:
            return "error", [], f"alembic_version holds {', '.join(unknown)}, which is not in the revision chain"
        way = "downgrade" if downgrade else "upgrade"
        if downgrade and (current is None or (target is not None and target not in driver.ancestors(scripts, current))):
            return "at-target", [], None  # already at or below the target: nothing to take back
        if not downgrade and target is not None and target in driver.ancestors(scripts, current):
            newer.add(current)
            return "error", [], f"at {current}, newer than {target}: use downgrade-tenants to go back"
        try:
            steps = [s.revision.revision for s in driver.steps_between(scripts, current, target, downgrade=downgrade)]
        except driver.CommandError as e:
            return "error", [], f"cannot {way} from {current} to {target or 'base'}: {e}"
        # e.g. a branched tenant (0004a, 0004b) taken back to 0004a: it is already there
        return ("pending", steps, None) if steps else ("at-target", [], None)

    items = []
    for tenant in tenants:
        read = reads[tenant.slug]
        if read.error:
            items.append(TenantPlan(tenant, "error", None, error=read.error, error_status="unreachable"))
            continue
        drift = None if ledger is None or downgrade else behind_ledger(scripts, tenant.slug, read.revision,
                                                                         ledger.get(tenant.slug))
        if drift:
            items.append(TenantPlan(tenant, "error", read.revision, error=drift, error_status="drifted"))
            continue
        if read.revision not in by_current:
            status, steps, error = steps_from(read.revision)
            for revision in steps:
                if revision not in outside:
                    outside[revision] = runs_outside_transaction(scripts, revision)
            by_current[read.revision] = read.revision, status, steps, [r for r in steps if outside[r]], error
        # One revision string and one list per revision, not per tenant (about 250 bytes a tenant at
        # 10,000); nothing changes them.
        current, status, steps, flagged, error = by_current[read.revision]
        items.append(TenantPlan(tenant, status, current, steps, flagged, error))
    read = [item for item in items if item.error_status != "unreachable"]
    if read and all(item.status == "error" and item.current in newer for item in read):
        raise InvalidUsage(f"--to {target} is older than every selected tenant: use downgrade-tenants to go back; "
                           "nothing was changed")
    heads = tuple(sorted(scripts.get_heads()))
    head = heads[0] if len(heads) == 1 else None  # several heads: a downgrade may still be planned
    return Plan("downgrade" if downgrade else "upgrade", target, head, items, skipped or [])


def plan_task(task: str, tenants: list[Tenant], skipped: list[tuple[str, str]] | None = None) -> Plan:
    """Plan a maintenance task: every selected tenant is pending."""
    return Plan(task, None, None, [TenantPlan(tenant, "pending") for tenant in tenants], skipped or [])


def check_canary(canary: int, tenants: list[Tenant]) -> None:
    """Refuse a canary larger than the selected fleet."""
    if canary > len(tenants):
        raise InvalidUsage(f"--canary {canary} is larger than the {len(tenants)} selected tenants")
