"""The fleet runner's pooled loop: tenants handed to the worker pool in batches, a page of them queued ahead.

A mixin of tenants.fleet.runner.FleetRun, which owns the state it uses (pool, slots' options,
report, stop) and the recording of each result.
"""

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait

from tenants.fleet.pool import Pooled, batch_size
from tenants.fleet.servers import ServerSlots
from tenants.migrate.plan import TenantPlan


class PooledLoop:
    """FleetRun's loop over the worker pool (see the module docstring)."""

    def _run_pooled(self, slots: ServerSlots, pages: Iterator[list[TenantPlan]], jobs: int) -> None:
        """Run the tenants in batches on the pool, queueing a page ahead as the queue runs down."""
        running: dict[Future, list[TenantPlan]] = {}
        timed_s, timed_n = 0.0, 0  # the tenants run so far, in seconds and in number: what sizes the batches
        done: list[tuple[list[TenantPlan], list[Pooled]]] = []
        more = True  # pages left to queue
        while slots.queued() or running or done or more:
            while more and slots.queued() < self.tenancy.settings.plan_page:  # a page queued ahead, not the fleet
                page = next(pages, None)
                more = page is not None
                slots.add(page or [])
            self._submit(slots, running, jobs, timed_s / timed_n if timed_n else None)
            if self.stop and (slots.queued() or more):
                self.report.not_started.extend(i.slug for i in slots.drain())
                self.report.not_started.extend(i.slug for rest in pages for i in rest)
                more = False
            for batch, results in done:  # once the freed workers have their next batches: they never wait on this
                for item, outcome in zip(batch, results, strict=True):
                    if outcome is None:  # the run stopped before this queued tenant started
                        self.report.not_started.append(item.slug)
                        self._should_stop()  # a deadline the worker saw: say so in the report (a failure says so)
                    else:
                        self._record(outcome[0], item, outcome[1])
            done = []
            if not running:
                if more:
                    continue
                break
            finished, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
            if not finished and self.results.due():
                self._flush()  # a quiet spell (long tenants): the finished ones reach the ledger now
            for future in finished:
                batch = running.pop(future)
                slots.release(batch)
                results = self.pool.results(future)
                for result, _ in filter(None, results):
                    timed_s, timed_n = timed_s + result.duration_ms / 1000, timed_n + 1
                done.append((batch, results))

    def _submit(self, slots: ServerSlots, running: dict[Future, list[TenantPlan]], jobs: int,
                mean: float | None) -> None:
        """Hand out batches until the run stops, the servers are at their bound or enough are under way: with one
        server queued, a next batch waiting per worker (fleet.pool); with several, one per worker (ServerSlots)."""
        deadline = None if self.options.max_duration is None else self.report.started + self.options.max_duration
        while not self._should_stop() and slots.queued() and (  # the stop asked first: it halts the pool
                len(running) < (2 * jobs if slots.servers_queued() == 1 else jobs)):
            batch = slots.take_batch(batch_size(slots.queued(), jobs, mean))
            if not batch:
                return  # every server with queued tenants is at its --jobs-per-server bound
            with self.heartbeat.pause:  # a worker may be forked here: not while a beat is under way
                future = self.pool.submit(jobs, [self._args(item) for item in batch],
                                          stop_on_failure=self.options.fail_fast, deadline=deadline)
            running[future] = batch
