"""`--via celery`: the same fleet run, its tenants run by Celery workers instead of this machine's pool.

Everything up to the tenants is the in-process runner's (tenants.fleet.runner.FleetRun): control plane,
plan, fleet lock, plan checks, run row, unreadable tenants recorded. Then the plan is written to
the control plane (dispatched_runs, dispatched_tenants), the fleet lock is handed to the run
itself (its heartbeat now comes from the workers; whoever records the last result closes the
run and frees the lock: tenants.fleet.run_status.finalise_if_complete), and the first task of every
slot is sent (tenants.fleet.celery.relay). The command then follows the ledger, showing the same progress
and ending with the same summary and exit code; with --no-wait it returns the run id at once.
"""

import json
import time

from sqlalchemy import func, insert, select, update

from tenants.core.clock import utcnow
from tenants.core.control_schema import dispatched_runs, dispatched_tenants, fleet_locks, migration_runs, tenant_results
from tenants.core.engines import display_url
from tenants.core.errors import InvalidUsage
from tenants.core.ledger import TenantResult
from tenants.core.tenancy import Tenancy
from tenants.fleet.errors import BrokerUnreachable
from tenants.fleet.options import RunOptions
from tenants.fleet.run_status import NOT_STARTED, STOP_DISPATCH, finalise_if_complete, load_report, results_since
from tenants.fleet.runner import FleetRun
from tenants.fleet.servers import assign_slots

# Tenants of one server under way at once when --jobs-per-server is not given.
DEFAULT_PER_SERVER = 4
POLL_SECONDS = 0.2
HANDED_OFF_HOST = "celery workers"


def check_broker() -> str:
    """Connect to the broker once; return its address (password hidden) or raise BrokerUnreachable."""
    from tenants.fleet.celery.app import app

    address = display_url(app.conf.broker_url)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.5, timeout=5)
    except Exception as e:  # kombu raises its own OperationalError, transports their own errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BrokerUnreachable(f"cannot reach the Celery broker {address}: {reason}; nothing was changed "
                                "(set CELERY_BROKER_URL)") from e
    return address


def check_celery_run(tenancy: Tenancy, options: RunOptions) -> None:
    """Refuse options Celery runs do not take, then check the broker: all before anything changes."""
    if not tenancy.settings.control_url.startswith("postgresql"):
        raise InvalidUsage("--via celery needs a PostgreSQL control plane (DATABASE_URL): the workers record "
                           "their results there and lock their slots with it")
    if options.jobs:
        raise InvalidUsage("--jobs sizes this machine's pool; with --via celery the workers' concurrency does: "
                           "bound each server with --jobs-per-server")
    for name, flag in (("canary", "--canary"), ("retry_busy", "--retry-busy")):
        if getattr(options, name):
            raise InvalidUsage(f"{flag} is not supported with --via celery: run it in-process")
    if not options.dry_run:
        check_broker()


class CeleryFleetRun(FleetRun):
    """A FleetRun whose tenants go to Celery workers, slot by slot (see tenants.fleet.celery.relay)."""

    handed_off = False

    def _run_all(self) -> None:
        if self.stop:  # Ctrl-C before the hand-off: nothing is sent
            self.report.not_started.extend(item.slug for item in self.plan.pending)
            return
        if not self.plan.count("pending"):
            return
        from tenants.fleet.celery.app import app

        run_id = self.report.run_id
        per_server = self.options.jobs_per_server or DEFAULT_PER_SERVER
        # Every pending tenant in memory: the dispatch table is written in one go (this executor's
        # runner holds the plan; the in-process one holds a page of it).
        placed = assign_slots(self.tenancy.settings, list(self.plan.pending), per_server)
        self._write_plan(run_id, placed, per_server, display_url(app.conf.broker_url), app.conf.task_default_queue)
        with self.engine.connect() as conn:
            self.seen = conn.execute(select(func.coalesce(func.max(tenant_results.c.id), 0))
                                     .where(tenant_results.c.run_id == run_id)).scalar()
        self.heartbeat.stop()  # the workers beat for the run from now on (tenants.fleet.celery.relay)
        with self.engine.begin() as conn:  # from now on the run holds the fleet lock, not this process
            conn.execute(update(fleet_locks).where(fleet_locks.c.run_id == run_id)
                         .values(host=HANDED_OFF_HOST, pid=0, heartbeat_at=utcnow()))
        self.handed_off = True
        firsts = [(item.slug, server, slot) for item, server, slot, position in placed if position == 0]
        self._send_firsts(run_id, firsts, placed)
        if not self.options.no_wait:
            self._follow(run_id)

    def _write_plan(self, run_id: str, placed: list, per_server: int, broker: str, queue: str) -> None:
        params = {item.slug: {k: v for k, v in self.params(item).items() if k != "rendered"}
                  for item, *_ in placed}
        common = next(iter(params.values()))
        rendered = {json.dumps(item.current): self.params(item).get("rendered") for item, *_ in placed}
        deadline = (time.time() + self.options.max_duration - (time.monotonic() - self.report.started)
                    if self.options.max_duration else None)
        payload = {"params": common, "rendered": {k: v for k, v in rendered.items() if v is not None},
                   "fail_fast": self.options.fail_fast, "deadline": deadline}
        rows = [{"run_id": run_id, "tenant_slug": item.slug, "planned": "pending", "from_revision": item.current,
                 "server": server, "slot": slot, "position": position, "note": None, "sent_at": None,
                 "params": json.dumps({k: v for k, v in params[item.slug].items() if common.get(k) != v})}
                for item, server, slot, position in placed]
        others = [(item, "at-target", None) for item in self.plan.at_target]
        others += [(item, "error", item.error) for item in self.plan.errors]
        rows += [{"run_id": run_id, "tenant_slug": item.slug, "planned": kind, "from_revision": item.current,
                  "server": None, "slot": None, "position": None, "note": note, "sent_at": None, "params": None}
                 for item, kind, note in others]
        rows += [{"run_id": run_id, "tenant_slug": slug, "planned": "left-out", "from_revision": None,
                  "server": None, "slot": None, "position": None, "note": reason, "sent_at": None, "params": None}
                 for slug, reason in self.plan.skipped]
        with self.engine.begin() as conn:
            conn.execute(insert(dispatched_runs).values(
                run_id=run_id, unit=self.unit, payload=json.dumps(payload), jobs_per_server=per_server,
                broker=broker, queue=queue, created_at=utcnow()))
            conn.execute(insert(dispatched_tenants), rows)

    def _send_firsts(self, run_id: str, firsts: list[tuple[str, str, int]], placed: list) -> None:
        """Send each slot's first task; a slot whose task cannot be sent is recorded as not started."""
        from tenants.fleet.celery.relay import mark_sent, record
        from tenants.fleet.celery.tasks import send_tenant

        failed: str | None = None
        for slug, server, slot in firsts:
            if failed is None:
                try:
                    send_tenant(run_id, slug)
                    mark_sent(self.engine, run_id, slug)
                    continue
                except Exception as e:  # the broker went away after the check: say so, keep the run whole
                    failed = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    self.report.notes.append(f"could not send tasks to the broker ({failed}): "
                                             "the tenants of the unsent slots were not started")
            for item, s, sl, _ in placed:
                if (s, sl) == (server, slot):
                    record(self.tenancy, run_id, TenantResult(item.slug, NOT_STARTED, item.current, None, 0.0,
                                                              failed, STOP_DISPATCH))
        if failed is not None:
            finalise_if_complete(self.engine, run_id)

    def _follow(self, run_id: str) -> None:
        """Show results as the workers record them, until every tenant has one, the run is closed or --timeout.

        The watchdog (tenants.fleet.celery.watchdog) sends a stalled slot's task again, or fails
        its tenants, so the run ends even if a message is lost.
        """
        from tenants.fleet.celery.watchdog import watch_run

        expected = {item.slug for item in self.plan.pending}
        have: set[str] = set()
        last_check = time.monotonic()
        timeout = self.options.wait_timeout
        stall_after = self.tenancy.settings.stall_after
        while True:
            if self.stop == "interrupted":  # Ctrl-C (tenants.fleet.interrupt): this process stops, the run does not
                self.report.notes.append(f"stopped following run {run_id}; its tenants go on in the workers: "
                                         f"'manage.py run-status {run_id}' reports it")
                return
            if timeout is not None and time.monotonic() - self.report.started > timeout:
                self.stop = "wait-timeout"
                self.report.notes.append(f"stopped waiting after --timeout {timeout:g} s; the run goes on in "
                                         f"the workers: 'manage.py run-status {run_id}' reports it")
                return
            for result_id, result in results_since(self.engine, run_id, self.seen):
                self.seen = result_id
                self._show(result)
                have.add(result.slug)
            if expected <= have and finalise_if_complete(self.engine, run_id):
                return
            if time.monotonic() - last_check > 2:
                last_check = time.monotonic()
                if self._run_status(run_id) != "running":
                    self.report.notes.append(f"run {run_id} was closed while tenants were left: "
                                             "another run took the fleet lock over")
                    return
                for note in watch_run(self.tenancy, run_id, stall_after):  # shown next time round
                    self.report.notes.append(note)
                    self.emit("note", note)
            time.sleep(POLL_SECONDS)

    def _show(self, result: TenantResult) -> None:
        if result.status == NOT_STARTED:
            self.report.not_started.append(result.slug)
            return
        self.report.add(result)
        self.done += 1
        self.emit("result", (result, self.done, self.total))

    def _run_status(self, run_id: str) -> str:
        with self.engine.connect() as conn:
            return conn.execute(select(migration_runs.c.status).where(migration_runs.c.id == run_id)).scalar()

    def _conclude(self) -> str:
        if not self.handed_off:
            return super()._conclude()
        if self.options.no_wait:
            return "dispatched"
        if self.stop == "interrupted":
            return "interrupted"
        if self.stop == "wait-timeout":
            return "running"
        self.report.notes += [note for note in load_report(self.engine, self.report.run_id).notes
                              if note not in self.report.notes]
        return self._run_status(self.report.run_id)

    def _abandon(self) -> None:
        if not self.handed_off:  # once handed off, the run is the workers' to finish
            super()._abandon()

    def _release(self) -> None:
        if not self.handed_off:
            super()._release()
