"""What a fleet run did, the exit code that says it, and its JSON form for scheduled jobs."""

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain

from tenants.core.engines import mask_secrets
from tenants.core.ledger import TenantResult
from tenants.core.spool import Spool
from tenants.migrate.plan import Plan

# Exit codes of every fleet command (README, "Upgrading every tenant").
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_COULD_NOT_START, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_RUNNING = 5  # run-status: the run is still under way in the workers

FAILURES = frozenset({"failed", "timeout", "unreachable", "drifted"})


def results_status(statuses: Iterable[str]) -> str:
    """Return what tenants' final result statuses make of a run that was not stopped: failed, busy or ok."""
    statuses = set(statuses)
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
    """The outcome of one fleet run: per-tenant results, tenants left out, and why it ended.

    Results and tenants not started are spooled (tenants.core.spool): a report of 10,000 tenants
    holds their tallies, not their results. Add results with `add`.
    """

    kind: str
    target: str | None
    plan: Plan
    # ok | failed | busy | stopped | canary-failed | interrupted | locked | dry-run;
    # lock-lost (its heartbeat found the fleet lock taken over: exit 3);
    # a run handed to Celery also: dispatched (--no-wait) | running | aborted (taken over as stale)
    status: str = "ok"
    run_id: str | None = None
    results: Spool[TenantResult] = field(default_factory=Spool)  # every result, a retried tenant's retry last
    not_started: Spool[str] = field(default_factory=Spool)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # why the run could not go on (control plane unreachable): one line, exit 3
    started: float = field(default_factory=time.monotonic)
    duration_s: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)  # of each tenant's final result
    # The tenants whose last result is not ok (few), by slug: a later result of theirs (a retry) replaces it.
    unsettled: dict[str, str] = field(default_factory=dict)

    def add(self, result: TenantResult) -> None:
        """Record one tenant's result; a later result of a tenant that did not succeed replaces the earlier one."""
        self.results.append(result)
        earlier = self.unsettled.pop(result.slug, None)
        if earlier is not None:
            self.statuses[earlier] -= 1
        self.statuses[result.status] += 1
        if result.status != "ok":
            self.unsettled[result.slug] = result.status

    def final(self) -> dict[str, TenantResult]:
        """Return each tenant's last result, by slug (reads every result back: for small runs and tests)."""
        return {result.slug: result for result in self.results}

    def failures(self) -> list[TenantResult]:
        """Return the final results that are not ok, in the order they came."""
        last = self._last_failures()
        return [result for index, result in enumerate(self.results) if last.get(result.slug) == index]

    def _last_failures(self) -> dict[str, int]:
        """Return, by slug, the position of each tenant's final result that is not ok (few: no ok result is kept)."""
        return {result.slug: index for index, result in enumerate(self.results)
                if self.unsettled.get(result.slug) == result.status}

    @property
    def counts(self) -> dict[str, int]:
        counted = self.statuses
        return {
            "selected": self.plan.selected, "at_target": self.plan.count("at-target"),
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
        final = {status for status, n in self.statuses.items() if n > 0}
        if final & FAILURES or self.status == "canary-failed":
            return EXIT_FAILED
        if self.status == "stopped":
            return EXIT_STOPPED
        if "busy" in final:
            return EXIT_FAILED if "ok" in final else EXIT_COULD_NOT_START
        return EXIT_OK

    def ledger_counts(self) -> dict[str, int]:
        """Counts in the shape of the migration_runs row."""
        c = self.counts
        return {"total": c["selected"], "ok": c["ok"], "failed": c["failed"] + c["timeout"] + c["unreachable"],
                "busy": c["busy"], "skipped": c["at_target"] + c["not_started"]}

    def json_chunks(self) -> Iterator[str]:
        """Yield the JSON report in pieces (run id, target, counts, per-tenant results), one tenant per line.

        In pieces: the report of a large fleet is never built whole in memory.
        """
        yield "{\n"
        for key, value in (("run_id", self.run_id), ("kind", self.kind), ("target", self.target),
                           ("head", self.plan.head), ("status", self.status), ("exit_code", self.exit_code),
                           ("duration_s", round(self.duration_s, 3)), ("counts", self.counts)):
            yield f"  {json.dumps(key)}: {json.dumps(value, default=str)},\n"
        last = self._last_failures()
        results = (self._row(result) for index, result in enumerate(self.results)
                   if result.status == "ok" or last.get(result.slug) == index)
        at_target = ({"slug": item.slug, "status": "at-target", "from": item.current, "to": item.current}
                     for item in self.plan.at_target)
        yield from _rows("results", chain(results, at_target))
        yield from _rows("not_started", iter(self.not_started))
        yield from _rows("left_out", ({"slug": slug, "reason": reason} for slug, reason in self.plan.skipped))
        yield f'  "outside_transaction": {json.dumps(self.plan.outside_transaction())},\n'
        yield f'  "notes": {json.dumps(self.notes, default=str)},\n'
        yield f'  "error": {json.dumps(self.error)}\n}}'

    @staticmethod
    def _row(r: TenantResult) -> dict:
        return {"slug": r.slug, "status": r.status, "from": r.from_revision, "to": r.to_revision,
                "duration_ms": round(r.duration_ms, 1), "error": r.error, "detail": r.detail}

    def to_dict(self) -> dict:
        """Return the JSON report as a dict (every tenant's row in memory: for small runs and tests)."""
        return json.loads("".join(self.json_chunks()))


def json_list(rows: Iterable, indent: str = "") -> Iterator[str]:
    """Yield a JSON list in pieces, one compact row per line, written as the rows come (none kept).

    Not `json.dumps(rows, indent=2)`: that runs the pure-Python encoder (the C one serves no
    indent), 0.36 s of `tenant-versions --json` at 10,000 tenants, and needs every row at once.
    """
    first = True
    for row in rows:
        yield ("[\n" if first else ",\n") + f"{indent}  " + json.dumps(row, default=str)
        first = False
    yield "[]" if first else f"\n{indent}]"


def _rows(key: str, rows: Iterable) -> Iterator[str]:
    """Yield `"key": [...],` of the report's JSON object, one row per line."""
    yield f"  {json.dumps(key)}: "
    yield from json_list(rows, "  ")
    yield ",\n"
