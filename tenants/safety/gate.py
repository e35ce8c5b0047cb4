"""The migration gate: which lint hazards stop an upgrade run before any tenant is touched.

Unacknowledged data loss always stops a run unless the operator allows destructive changes;
the other hazards are warnings that `strict` turns into stops. Acknowledged hazards never
stop a run, but a revision with any data-loss hazard still gets each tenant backed up first.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import ScriptDirectory

from tenants.core.backends import url_backend
from tenants.core.tenancy import Tenancy
from tenants.migrate.plan import Plan
from tenants.safety.errors import GateBlocked
from tenants.safety.lint.hazards import DATA_LOSS, Hazard, format_hazard

LINT_DIR = ".lint"  # in the tenant folder: the lint's verdicts per chain (tenants.safety.lint.cache)


def gate(hazards: Iterable[Hazard], allow_destructive: bool = False, strict: bool = False) -> list[Hazard]:
    """Return the hazards that must stop the run."""
    blocking = []
    for hazard in hazards:
        if hazard.acknowledged:
            continue
        if hazard.severity == DATA_LOSS:
            if not allow_destructive:
                blocking.append(hazard)
        elif strict:
            blocking.append(hazard)
    return blocking


def dialects_of(dialects: Iterable[str]) -> frozenset[str]:
    """Return the dialects to lint a fleet with: every one its tenants use (PostgreSQL for an empty fleet)."""
    return frozenset(dialects) or frozenset({"postgresql"})


@dataclass
class GateReport:
    """The lint's verdict on a planned run."""

    hazards: list[Hazard]
    blocking: list[Hazard]
    destructive: set[str] = field(default_factory=set)

    def raise_if_blocked(self) -> None:
        """Raise GateBlocked when any hazard blocks the run."""
        if self.blocking:
            raise GateBlocked(self.blocking)

    def needs_backup(self, pending: Iterable[str]) -> bool:
        """Return whether a tenant running these revisions must be backed up first."""
        return bool(self.destructive.intersection(pending))


def plan_gate(scripts: ScriptDirectory, from_revisions: Iterable[str | None], target: str | None = "head",
              dialects: Collection[str] = ("postgresql",), allow_destructive: bool = False,
              strict: bool = False, *, downgrade: bool = False, cache: Path | None = None) -> GateReport:
    """Lint every revision body a run from the given starting revisions would run, and judge the run.

    An upgrade runs upgrade bodies; a downgrade runs the downgrade bodies of the revisions it takes back.
    With `cache` (a folder), the hazards found for the same question about the same chain are reused.
    """
    starts = set(from_revisions)

    def lint() -> list[Hazard]:
        # pglast loads only when there is something to lint, so a no-op run stays fast.
        from tenants.safety.lint.chain import lint_downgrade, lint_pending

        if downgrade:
            return lint_downgrade(scripts, starts, target, dialects)
        return lint_pending(scripts, starts, target, dialects)

    if cache is None:
        hazards = lint()
    else:
        from tenants.safety.lint.cache import cached_hazards, question_key

        hazards = cached_hazards(cache, scripts, question_key(starts, target, dialects, downgrade), lint)
    return GateReport(hazards, gate(hazards, allow_destructive, strict),
                      {h.revision for h in hazards if h.severity == DATA_LOSS})


class LintGate:
    """The gate as a plan check of one run; it keeps its verdict for the backup decision.

    Made afresh for every run, so nothing it learns outlives the run or leaks into its options.
    """

    def __init__(self, allow_destructive: bool, strict: bool, backup_all: bool, *, downgrade: bool = False) -> None:
        self.allow_destructive, self.strict, self.backup_all = allow_destructive, strict, backup_all
        self.downgrade = downgrade
        self.report: GateReport | None = None

    def __call__(self, tenancy: Tenancy, plan: Plan, options: object) -> list[str]:
        """Lint the revisions pending anywhere in the plan; raise GateBlocked or return warnings."""
        if not plan.count("pending"):
            return []
        starts = set(plan.starts)
        dialects = dialects_of(url_backend(url or tenancy.settings.control_url) for url in plan.pending_urls())
        self.report = plan_gate(tenancy.scripts, starts, plan.target, dialects, self.allow_destructive, self.strict,
                                downgrade=self.downgrade, cache=Path(tenancy.settings.tenant_dir) / LINT_DIR)
        self.report.raise_if_blocked()
        return [f"migration hazard: {format_hazard(h)}" for h in self.report.hazards]

    def needs_backup(self, steps: list[str]) -> bool:
        """Return whether a tenant running `steps` must be backed up before it migrates."""
        return self.backup_all or (self.report is not None and self.report.needs_backup(steps))


#: Hazards that make a revision fail on a dialect: they refuse even the creation of an empty tenant there.
FAILS_ON = {"sqlite": frozenset({"sqlite-fails", "sqlite-function"})}


def creation_gate(scripts: ScriptDirectory, dialect: str) -> list[str]:
    """Lint the whole chain for a new tenant on `dialect`; raise GateBlocked for what fails there, else warn.

    An empty tenant has no rows to lose: data-loss hazards do not stop its creation.
    """
    from tenants.safety.lint.chain import lint_revisions

    hazards = lint_revisions(scripts, None, "head", (dialect,))
    blocking = [h for h in hazards if not h.acknowledged and h.kind in FAILS_ON.get(dialect, ())]
    if blocking:
        raise GateBlocked(blocking)
    return [f"migration hazard: {format_hazard(h)}" for h in hazards]
