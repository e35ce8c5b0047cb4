"""Run one per-tenant unit of work over a plan's pending tenants, on this machine, on record.

Tenants go through a bounded pool of processes (Alembic's globals are not thread-safe), their
results written to the ledger in batches (fleet.recorder); the fleet lock keeps two runs apart.
"""

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from datetime import datetime, timedelta
from itertools import islice

from sqlalchemy.exc import InterfaceError, OperationalError

from tenants.core.clock import utcnow
from tenants.core.errors import TenantError
from tenants.core.ledger import TenantResult, correct_ledger, finish_run, start_run
from tenants.core.tenancy import Tenancy
from tenants.fleet.interrupt import interrupt_requests_stop
from tenants.fleet.lock import FleetLock, Heartbeat
from tenants.fleet.options import PlanCheck, RunOptions
from tenants.fleet.pool import WorkerPool
from tenants.fleet.pooled_loop import PooledLoop
from tenants.fleet.recorder import ResultBuffer
from tenants.fleet.report import FAILURES, RunReport, control_lost_error, results_status
from tenants.fleet.servers import ServerSlots, default_jobs, pool_size
from tenants.fleet.units import process_tenancy, read_back_result, run_unit
from tenants.migrate.plan import Plan, TenantPlan

Event = Callable[[str, object], None]
LOCK_LOST = "lock-lost"  # the run's heartbeat found its fleet lock taken over
CONTROL_LOST = "control-lost"  # the control plane stopped answering mid-run
CONTROL_ERRORS = (OperationalError, InterfaceError)  # the control plane's database is gone, not a tenant's failure


def paged(items: Iterable[TenantPlan], size: int) -> Iterator[list[TenantPlan]]:
    """Yield `items` in lists of `size`."""
    items = iter(items)
    while page := list(islice(items, size)):
        yield page


class FleetRun(PooledLoop):
    """One run of one unit over a plan's pending tenants."""

    def __init__(self, tenancy: Tenancy, plan: Plan, unit: str, params: Callable[[TenantPlan], dict],
                 options: RunOptions, on_event: Event | None, checks: tuple[PlanCheck, ...] = ()) -> None:
        self.tenancy, self.plan, self.unit, self.params, self.options = tenancy, plan, unit, params, options
        self.emit = on_event or (lambda event, payload: None)
        # A rehearsal is recorded as a run of its own kind: it never counts as a tenant's last migration.
        self.report = RunReport(("rehearse-" if options.rehearse else "") + plan.kind, plan.target, plan)
        self.engine, self.checks = tenancy.control_engine, checks
        # Results are written with commits that do not wait for their WAL flush (see core.engines).
        self.ledger = tenancy.engines.get(tenancy.settings.control_url, durable_commits=False)
        self.results = ResultBuffer(self.ledger)
        self.lock = FleetLock(self.engine, stale_after=options.stale_after or tenancy.settings.lock_stale_after)
        self.heartbeat = Heartbeat(self.lock, every=min(options.heartbeat_every, self.lock.stale_after / 3))
        self.pool = WorkerPool(tenancy, (self.ledger,))
        self.done, self.total = 0, plan.count("pending") + plan.count("error")
        self.retry: dict[str, TenantPlan] = {}  # with --retry-busy: the tenants found busy or timed out
        self.stop: str | None = None
        self.in_tenant = False  # a tenant runs in this process: Ctrl-C interrupts it

    def execute(self) -> RunReport:
        """Run the plan and return the report (see the module docstring for the order of things)."""
        plan, report = self.plan, self.report
        self.emit("plan", plan)
        if self.options.dry_run:
            report.notes += self._checks()
            return self._finish("dry-run")
        with interrupt_requests_stop(self._interrupt):  # on record from here: one Ctrl-C stops it, wherever it lands
            return self._execute(plan, report)

    def _execute(self, plan: Plan, report: RunReport) -> RunReport:
        # The ledger of tenants found at target is corrected (a run killed after their commit, or before its write).
        if stale := correct_ledger(self.engine, dict(plan.stale)):
            report.notes.append(f"ledger corrected for {len(stale)} tenants found at target: " + ", ".join(stale[:10]))
        if not plan.count("pending") and not plan.count("error"):
            report.run_id = start_run(self.engine, self.report.kind, plan.target, self.options.started_by,
                                      self.options.recorded(), total=plan.selected)
            finish_run(self.engine, report.run_id, "ok", report.ledger_counts())
            return self._finish("ok")
        try:
            note = self.lock.acquire() if self.options.fleet_lock else None
        except TenantError as e:
            report.notes.append(str(e))  # nothing ran or is recorded; the report names the tenants left waiting
            for index, item in enumerate(plan.pending, 1):
                busy = TenantResult(item.slug, "busy", item.current, None, 0.0,
                                    f"tenant {item.slug!r} is pending in the run that holds the fleet lock")
                report.add(busy)
                self.emit("result", (busy, index, plan.count("pending")))
            return self._finish("locked")
        if self.lock.held:
            self.heartbeat.start()
        try:
            if note:
                report.notes.append(note)
                self.emit("note", note)
            report.notes += self._checks()
            report.run_id = start_run(self.engine, self.report.kind, plan.target, self.options.started_by,
                                      self.options.recorded(), total=plan.selected)
            if self.lock.held:
                self.lock.adopt_run(report.run_id)
            self.emit("start", report.run_id)
            for item in plan.errors:
                self._record(TenantResult(item.slug, item.error_status, item.current, None, 0.0, item.error), item)
            self._flush()  # in the ledger before any tenant runs (a Celery run counts its results from there)
            self._run_all()
            self._flush()
            return self._finish(self._conclude())
        except CONTROL_ERRORS as e:  # before or between the guarded ledger writes
            self._lose_control(e)
            return self._finish("aborted")
        except Exception:  # unforeseen (a bug): nothing else would ever close the run row
            self._abandon()
            raise
        finally:
            self._flush()  # results of a run left by an unexpected error still reach the ledger
            self.heartbeat.stop()
            self.pool.close()
            self._release()
            if self.ledger is not self.engine:
                self.ledger.dispose()

    def _conclude(self) -> str:
        """Close the run row with its final status and return that status.

        The row is closed only if it is still running: a run that lost the fleet lock keeps the
        `aborted` its taker wrote (with this run's counts), and says so.
        """
        status = self._status()
        if status == CONTROL_LOST:
            return "aborted"
        counts = self.report.ledger_counts()
        if status == LOCK_LOST or not finish_run(self.engine, self.report.run_id, status, counts, if_running=True):
            self._lose_lock()
            finish_run(self.engine, self.report.run_id, "aborted", counts)
            return LOCK_LOST
        return status

    def _lose_lock(self) -> None:
        if self.stop != LOCK_LOST:
            self.stop = LOCK_LOST
            self.report.notes.append("this run lost the fleet lock (another run took it over as stale): "
                                     "no new tenant was started; its run is recorded as aborted")

    def _abandon(self) -> None:
        with suppress(*CONTROL_ERRORS):
            if self.report.run_id:
                finish_run(self.engine, self.report.run_id, "aborted", self.report.ledger_counts(), if_running=True)

    def _release(self) -> None:
        with suppress(*CONTROL_ERRORS):  # the row stays; the next run takes it over (this process will be gone)
            self.lock.release()

    def _lose_control(self, error: Exception) -> None:
        """Stop starting tenants and say, in one line, that the control plane is gone."""
        if self.stop == CONTROL_LOST:
            return
        self.stop = CONTROL_LOST
        self.report.error = control_lost_error(error)

    def _checks(self) -> list[str]:
        checks = [*self.options.plan_checks, *self.checks]
        return [note for check in checks for note in check(self.tenancy, self.plan, self.options) or []]

    def _finish(self, status: str) -> RunReport:
        self.report.status = status
        self.report.duration_s = time.monotonic() - self.report.started
        self.emit("done", self.report)
        return self.report

    def _status(self) -> str:
        if self.stop in ("interrupted", "canary-failed", LOCK_LOST, CONTROL_LOST):
            return self.stop
        if self.stop == "max-duration":
            return "stopped"
        return results_status(status for status, count in self.report.statuses.items() if count)

    def _run_all(self) -> None:
        pending, canary = self.plan.pending, self.options.canary
        if canary:
            self._run_batch(islice(pending, canary))  # the first `canary`; `pending` goes on after them
            if any(count for status, count in self.report.statuses.items() if status != "ok") and not self.stop:
                self.stop = "canary-failed"
                self.report.notes.append(f"canary of {canary} tenants failed: no other tenant was started")
        self._run_batch(pending)
        if self.options.retry_busy and not self.stop:
            again = [item for slug, item in self.retry.items()
                     if self.report.unsettled.get(slug) in ("busy", "timeout")]
            if again:
                self.report.notes.append(f"retrying {len(again)} busy or timed-out tenants once")
                self.total += len(again)
                self.retry = {}
                self._run_batch(again)

    def _should_stop(self) -> bool:
        if self.heartbeat.lost.is_set():
            self._lose_lock()
        limit = self.options.max_duration
        if not self.stop and limit is not None and time.monotonic() - self.report.started > limit:
            self.stop = "max-duration"
            self.report.notes.append(f"--max-duration {limit:g} s reached: no new tenant started")
        if self.stop is not None:
            self.pool.halt()  # the tenants waiting in the workers' queue do not start either
        return self.stop is not None

    def _args(self, item: TenantPlan) -> tuple:
        params = {**self.params(item), "run_id": self.report.run_id}
        return (self.tenancy.settings, item.slug, item.tenant.database_url, self.unit, params)

    def _run_batch(self, items: Iterable[TenantPlan]) -> None:
        """Run `items`, taken a page at a time (settings.plan_page): the run holds a page or two of them."""
        pages = paged(items, self.tenancy.settings.plan_page)
        slots = ServerSlots(self.tenancy.settings, self.options.jobs_per_server)
        slots.add(next(pages, []))
        jobs = pool_size(self.options.jobs, default_jobs(self.tenancy, self.plan), self.options.jobs_per_server,
                         slots.servers_queued())
        if jobs == 1 or self.plan.count("pending") == 1:
            return self._run_here(slots, pages)
        self._run_pooled(slots, pages, jobs)

    def _interrupt(self) -> None:
        """Ctrl-C: no new tenant starts, one running here is abandoned; a run already stopping keeps its cause."""
        self.stop = self.stop or "interrupted"
        self.pool.halt()
        if self.in_tenant:
            self.in_tenant = False  # raised once: a second Ctrl-C cannot interrupt the handling of the first
            raise KeyboardInterrupt

    def _run_here(self, slots: ServerSlots, pages: Iterator[list[TenantPlan]]) -> None:
        """Run the tenants one by one in this process, the servers taking turns within each page; Ctrl-C
        interrupts the one running (see _interrupt)."""
        process_tenancy(self.tenancy.settings, self.tenancy)
        while items := slots.drain():
            for index, item in enumerate(items):
                if self._should_stop():
                    self.report.not_started.extend(i.slug for i in items[index:])
                    self.report.not_started.extend(i.slug for rest in pages for i in rest)
                    return
                args = self._args(item)
                try:
                    self.in_tenant = True
                    result = run_unit(*args)
                    self.in_tenant = False
                except KeyboardInterrupt:  # rolled back, or just committed: the tenant itself says which
                    result = read_back_result(*args, "interrupted (Ctrl-C)")
                self._record(result, item)
            slots.add(next(pages, []))

    def _record(self, result: TenantResult, item: TenantPlan, finished: datetime | None = None) -> None:
        """Queue a result for the ledger (fleet.recorder), dated from when it `finished` (default now)."""
        if self.stop != CONTROL_LOST:
            self.results.add(result, (finished or utcnow()) - timedelta(milliseconds=result.duration_ms))
            if self.results.due():
                self._flush()
        self.report.add(result)
        if self.options.retry_busy and result.status in ("busy", "timeout"):
            self.retry[item.slug] = item
        if self.options.fail_fast and result.status in FAILURES and not self.stop:
            self.stop = "fail-fast"
            self.report.notes.append(f"--fail-fast: {result.slug} failed, no other tenant was started")
        self.done += 1
        self.emit("result", (result, self.done, self.total))

    def _flush(self) -> None:
        """Write the queued results; a control plane that stopped answering stops the run instead."""
        try:
            if self.stop != CONTROL_LOST and self.report.run_id:
                self.results.flush(self.report.run_id)
        except CONTROL_ERRORS as e:
            self._lose_control(e)
        self.results.drop()  # what could not be written (the report still has it)
