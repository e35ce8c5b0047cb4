"""What a fleet run did, the exit code that says it, and its JSON form for scheduled jobs."""

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tenants.core.engines import mask_secrets
from tenants.core.ledger import TenantResult
from tenants.migrate.plan import Plan

# Exit codes of every fleet command (README, "Upgrading every tenant").
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_COULD_NOT_START, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_RUNNING = 5  # run-status: the run is still under way in the workers

FAILURES = frozenset({"failed", "timeout", "unreachable", "drifted"})


def results_status(results: Iterable[TenantResult]) -> str:
    """Return what tenants' final results make of a run that was not stopped: failed, busy or ok."""
    statuses = {result.status for result in results}
    if statuses & FAILURES:
        return "failed"
    return "busy" if "busy" in statuses else "ok"


def control_lost_error(error: Exception) -> str:
    """The report's one line for a control plane that stopped answering mid-run (password masked)."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    return mask_secrets(f"control plane unreachable: {reason[0] if reason else type(error).__name__}; no new "
                        "tenant was started; tenants under way committed or rolled back, their results are in "
                        "this report but not in the ledger")


@dataclass
class RunReport:
    """The outcome of one fleet run: per-tenant results, tenants left out, and why it ended."""

    kind: str
    target: str | None
    plan: Plan
    # ok | failed | busy | stopped | canary-failed | interrupted | locked | dry-run;
    # lock-lost (its heartbeat found the fleet lock taken over: exit 3);
    # a run handed to Celery also: dispatched (--no-wait) | running | aborted (taken over as stale)
    status: str = "ok"
    run_id: str | None = None
    results: list[TenantResult] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # why the run could not go on (control plane unreachable): one line, exit 3
    started: float = field(default_factory=time.monotonic)
    duration_s: float = 0.0

    def final(self) -> dict[str, TenantResult]:
        """Return each tenant's last result (a retried tenant's retry wins)."""
        return {result.slug: result for result in self.results}

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(result.status for result in self.final().values())
        return {
            "selected": len(self.plan.items), "at_target": len(self.plan.at_target),
            "ok": counted["ok"], "failed": counted["failed"], "timeout": counted["timeout"],
            "unreachable": counted["unreachable"], "busy": counted["busy"],
            "not_started": len(self.not_started), "left_out": len(self.plan.skipped),
        }

    @property
    def exit_code(self) -> int:
        """0 all at target; 1 some failed; 3 could do nothing (locked, all busy); 4 window closed."""
        if self.status in ("locked", "lock-lost"):
            return EXIT_COULD_NOT_START
        if self.status == "interrupted":
            return EXIT_INTERRUPTED
        if self.status == "aborted":
            return EXIT_COULD_NOT_START if self.error else EXIT_FAILED
        if self.status == "running":
            return EXIT_RUNNING
        final = self.final().values()
        if any(result.status in FAILURES for result in final) or self.status == "canary-failed":
            return EXIT_FAILED
        if self.status == "stopped":
            return EXIT_STOPPED
        busy = [result for result in final if result.status == "busy"]
        if busy:
            return EXIT_FAILED if any(result.status == "ok" for result in final) else EXIT_COULD_NOT_START
        return EXIT_OK

    def ledger_counts(self) -> dict[str, int]:
        """Counts in the shape of the migration_runs row."""
        c = self.counts
        return {"total": c["selected"], "ok": c["ok"], "failed": c["failed"] + c["timeout"] + c["unreachable"],
                "busy": c["busy"], "skipped": c["at_target"] + c["not_started"]}

    def to_dict(self) -> dict:
        """Return the JSON report: run id, target, counts, per-tenant results."""
        at_target = [{"slug": item.slug, "status": "at-target", "from": item.current, "to": item.current}
                     for item in self.plan.at_target]
        results = [{"slug": r.slug, "status": r.status, "from": r.from_revision, "to": r.to_revision,
                    "duration_ms": round(r.duration_ms, 1), "error": r.error, "detail": r.detail}
                   for r in self.final().values()]
        return {
            "run_id": self.run_id, "kind": self.kind, "target": self.target, "head": self.plan.head,
            "status": self.status, "exit_code": self.exit_code, "duration_s": round(self.duration_s, 3),
            "counts": self.counts, "results": results + at_target,
            "not_started": self.not_started, "left_out": [{"slug": s, "reason": r} for s, r in self.plan.skipped],
            "outside_transaction": sorted({r for item in self.plan.pending for r in item.outside_transaction}),
            "notes": self.notes, "error": self.error,
        }
