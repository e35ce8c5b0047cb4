"""The migration gate: which lint hazards stop a fleet run before any tenant is touched.

Unacknowledged data loss always stops a run unless the operator allows destructive changes;
the other hazards are warnings that `strict` turns into stops. Acknowledged hazards never
stop a run, but a revision with any data-loss hazard still gets each tenant backed up first.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from alembic.script import ScriptDirectory

from tenants.errors import TenantError
from tenants.lint import DATA_LOSS, Hazard, lint_pending


class GateBlocked(TenantError):
    """The lint found hazards this run may not go past; no tenant was touched."""

    exit_code = 2

    def __init__(self, blocking: list[Hazard]) -> None:
        self.hazards = blocking
        lines = "\n".join("  " + format_hazard(h) for h in blocking)
        super().__init__(f"{len(blocking)} blocking migration hazard(s), no tenant was touched:\n{lines}\n"
                         "Acknowledge them in the revision file, or pass --allow-destructive (data loss) "
                         "/ drop --strict (other hazards) after review.")


def format_hazard(hazard: Hazard) -> str:
    """Return one line for a hazard: revision, severity, key, message and fix."""
    ack = f" [acknowledged: {hazard.acknowledgement}]" if hazard.acknowledged else ""
    return f"{hazard.revision} {hazard.severity} {hazard.key}: {hazard.message}{ack} (fix: {hazard.fix})"


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


def dialect_of(dialects: Iterable[str]) -> str:
    """Pick the dialect to lint a fleet with: PostgreSQL if any tenant lives there (its hazards are a superset)."""
    found = set(dialects)
    return "sqlite" if found == {"sqlite"} else "postgresql"


@dataclass
class GateReport:
    """The lint's verdict on a planned run."""

    hazards: list[Hazard]
    blocking: list[Hazard]
    destructive: set[str] = field(default_factory=set)

    def raise_if_blocked(self) -> None:
        """Raise GateBlocked (exit code 2) when any hazard blocks the run."""
        if self.blocking:
            raise GateBlocked(self.blocking)

    def needs_backup(self, pending: Iterable[str]) -> bool:
        """Return whether a tenant running these revisions must be backed up first."""
        return bool(self.destructive.intersection(pending))


def plan_gate(scripts: ScriptDirectory, from_revisions: Iterable[str | None], target: str | None = "head",
              dialect: str = "postgresql", allow_destructive: bool = False, strict: bool = False) -> GateReport:
    """Lint every revision pending from the given starting revisions and judge the run."""
    hazards = lint_pending(scripts, set(from_revisions), target, dialect)
    return GateReport(hazards, gate(hazards, allow_destructive, strict),
                      {h.revision for h in hazards if h.severity == DATA_LOSS})
