"""Compute, from bulk reads a page of tenants at a time, what each tenant of a run needs.

Nothing here changes a tenant. A plan lists, per tenant, its current revision and the
revisions to run, and flags the revisions that cannot run inside a transaction.
"""

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import ScriptDirectory

from tenants.core.errors import InvalidUsage
from tenants.core.ledger import ledger_versions
from tenants.core.registry import Tenant
from tenants.core.spool import Spool
from tenants.core.tenancy import Tenancy
from tenants.migrate import driver
from tenants.migrate.versions import read_versions

# A revision whose source says this cannot share the tenant's transaction.
_OUTSIDE_TRANSACTION = re.compile(r"concurrently|autocommit_block", re.IGNORECASE)
MISSING = object()  # no ledger entry


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


@dataclass(slots=True)
class Start:
    """The pending tenants of a plan that start from one revision: each runs the same steps."""

    steps: list[str]
    outside_transaction: list[str]
    count: int = 0
    sample: list[str] = field(default_factory=list)  # the first few slugs, for the plan's summary
    urls: set[str | None] = field(default_factory=set)  # their own database URLs (None: the default)


SAMPLE = 8  # slugs a plan keeps per start revision to name in its summary


class Plan:
    """What a run will do: per-tenant plans in plan order, their tallies, and the tenants left out and why.

    The per-tenant plans are spooled (tenants.core.spool), not held: a plan of 10,000 tenants
    costs the runner the memory of one page of them. `items`, `pending`, `at_target` and
    `errors` read them back each time; the tallies and `starts` answer without reading.
    """

    def __init__(self, kind: str, target: str | None, head: str | None, items: Iterable[TenantPlan] = (),
                 skipped: Iterable[tuple[str, str]] = ()) -> None:
        self.kind, self.target, self.head = kind, target, head
        self.spooled: Spool[TenantPlan] = Spool()
        self.tally: Counter[str] = Counter()
        self.starts: dict[str | None, Start] = {}
        self.stale: list[tuple[str, str | None]] = []  # at-target tenants whose ledger entry says otherwise
        for item in items:
            self.add(item)
        # After the items: a paged selection learns what it leaves out as its pages are read.
        self.skipped = skipped if isinstance(skipped, Spool) else Spool(skipped)

    def add(self, item: TenantPlan) -> None:
        """Append one tenant's plan."""
        self.spooled.append(item)
        self.tally[item.status] += 1
        if item.status == "pending":
            start = self.starts.get(item.current)
            if start is None:
                start = self.starts[item.current] = Start(item.steps, item.outside_transaction)
            start.count += 1
            start.urls.add(item.tenant.database_url)
            if len(start.sample) < SAMPLE:
                start.sample.append(item.slug)

    @property
    def selected(self) -> int:
        return len(self.spooled)

    def count(self, status: str) -> int:
        """Return how many tenants have this plan status: pending | at-target | error."""
        return self.tally[status]

    @property
    def items(self) -> Iterator[TenantPlan]:
        return iter(self.spooled)

    @property
    def pending(self) -> Iterator[TenantPlan]:
        return (item for item in self.spooled if item.status == "pending")

    @property
    def at_target(self) -> Iterator[TenantPlan]:
        return (item for item in self.spooled if item.status == "at-target")

    @property
    def errors(self) -> Iterator[TenantPlan]:
        return (item for item in self.spooled if item.status == "error")

    def pending_urls(self) -> set[str | None]:
        """Return the database URLs of the pending tenants (None: the default)."""
        return {url for start in self.starts.values() for url in start.urls}

    def outside_transaction(self) -> list[str]:
        """Return the pending revisions that run outside a transaction, sorted."""
        return sorted({r for start in self.starts.values() for r in start.outside_transaction})


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


def plan_migration(tenancy: Tenancy, pages: Iterable[list[Tenant]], target: str | None, *,
                   downgrade: bool = False, skipped: Iterable[tuple[str, str]] = (), drift: bool = True) -> Plan:
    """Read the tenants' revisions a page at a time, in bulk, and compute each one's pending revisions to `target`.

    With `drift`, an upgrade refuses (as `drifted`) each tenant found below what the ledger recorded.
    """
    scripts = tenancy.scripts
    known = {script.revision for script in scripts.walk_revisions()}
    outside: dict[str, bool] = {}
    by_current: dict[str | None, tuple[str | None, str, list[str], list[str], str | None]] = {}
    newer: set[str | None] = set()  # revisions past an upgrade's target
    refused: Counter[str | None] = Counter()  # tenants read but refused, by their revision
    stale: list[tuple[str, str | None]] = []
    unreachable = 0  # tenants whose revision could not be read

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

    def plan_page(page: list[Tenant]) -> Iterator[TenantPlan]:
        nonlocal unreachable
        reads = read_versions(tenancy, page)
        recorded = ledger_versions(tenancy.control_engine, [tenant.slug for tenant in page])
        for tenant in page:
            read = reads[tenant.slug]
            if read.error:
                unreachable += 1
                yield TenantPlan(tenant, "error", None, error=read.error, error_status="unreachable")
                continue
            why = behind_ledger(scripts, tenant.slug, read.revision, recorded.get(tenant.slug)) \
                if drift and not downgrade else None
            if why:
                refused[read.revision] += 1
                yield TenantPlan(tenant, "error", read.revision, error=why, error_status="drifted")
                continue
            if read.revision not in by_current:
                status, steps, error = steps_from(read.revision)
                for revision in steps:
                    if revision not in outside:
                        outside[revision] = runs_outside_transaction(scripts, revision)
                by_current[read.revision] = read.revision, status, steps, [r for r in steps if outside[r]], error
            # One revision string and one list per revision, not per tenant; nothing changes them.
            current, status, steps, flagged, error = by_current[read.revision]
            if status == "error":
                refused[current] += 1
            elif status == "at-target" and recorded.get(tenant.slug, MISSING) != current:
                stale.append((tenant.slug, current))
            yield TenantPlan(tenant, status, current, steps, flagged, error)

    heads = tuple(sorted(scripts.get_heads()))
    head = heads[0] if len(heads) == 1 else None  # several heads: a downgrade may still be planned
    plan = Plan("downgrade" if downgrade else "upgrade", target, head,
                (item for page in pages for item in plan_page(page)), skipped)
    plan.stale = stale
    read = plan.selected - unreachable
    if read and sum(refused[current] for current in newer) == read:
        raise InvalidUsage(f"--to {target} is older than every selected tenant: use downgrade-tenants to go back; "
                           "nothing was changed")
    return plan


def plan_task(task: str, tenants: Iterable[Tenant], skipped: Iterable[tuple[str, str]] = ()) -> Plan:
    """Plan a maintenance task: every selected tenant is pending."""
    return Plan(task, None, None, (TenantPlan(tenant, "pending") for tenant in tenants), skipped)


def check_canary(canary: int, plan: Plan) -> None:
    """Refuse a canary larger than the selected fleet."""
    if canary > plan.selected:
        raise InvalidUsage(f"--canary {canary} is larger than the {plan.selected} selected tenants")
