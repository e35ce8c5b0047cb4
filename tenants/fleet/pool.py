"""The fleet runner's worker processes: forked once per run, with no connection and little garbage across the fork.

Each worker has its next tenants waiting in the pool's queue, so it never sits idle while its
last result travels to the runner and the next tenants travel back (about 0.6 ms per tenant
on 2 cores). Fast tenants travel in batches: the pool's own cost per task (its manager and
feeder threads, about 0.3 ms of the runner's CPU on 2 cores) is then paid once per batch. A
tenant waiting in the queue may be started after the runner decided to stop, so the run's
stop is also a flag the workers share, checked before each tenant starts. The flag is a byte of
shared memory, not a multiprocessing Event: setting it takes no lock, so the runner's Ctrl-C
handler can set it whatever the runner was doing (fleet.interrupt).
"""

import gc
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from ctypes import c_bool
from datetime import datetime

from tenants.core.clock import utcnow
from tenants.core.ledger import TenantResult
from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.fleet.report import FAILURES
from tenants.fleet.units import init_worker, process_tenancy, read_back_result, run_unit

# A batch carries about this much work (measured on the tenants run so far), and at most MAX_BATCH tenants.
BATCH_SECONDS = 0.25
MAX_BATCH = 8

_HALT: c_bool | None = None  # this worker's copy of its pool's stop flag (set by the pool initializer)


def _init_pooled(settings: TenantSettings, parent: int, halt: c_bool) -> None:
    global _HALT
    _HALT = halt
    init_worker(settings, parent)


# A pooled tenant's outcome: its result and when it finished (the worker's clock), or None: not started.
Pooled = tuple[TenantResult, datetime] | None


def run_pooled(batch: list[tuple], stop_on_failure: bool, deadline: float | None) -> list[Pooled]:
    """Run a batch of tenants in a worker, one after another, each unless the run has stopped.

    `deadline` is a time.monotonic() value (one clock for every process of the machine). Each
    tenant's finishing time is read here, when it finished: the runner dates the tenant's start in
    the ledger from it (its result reaches the runner with the rest of its batch, later; timed
    there, the two clock reads and a thread switch between them let a worker's consecutive tenants
    seem to overlap). With `stop_on_failure`
    (--fail-fast), a failure stops the run here, before the runner hears of it: no tenant of
    this batch, or waiting in the queue, starts after it.
    """
    results: list[Pooled] = []
    for args in batch:
        if (_HALT is not None and _HALT.value) or (deadline is not None and time.monotonic() > deadline):
            results.append(None)
            continue
        result = run_unit(*args)
        if stop_on_failure and result.status in FAILURES and _HALT is not None:
            _HALT.value = True
        results.append((result, utcnow()))
    return results


def batch_size(queued: int, workers: int, tenant_seconds: float | None) -> int:
    """Return how many tenants the next task carries.

    One until tenants have been timed; then about BATCH_SECONDS of work, so only fast tenants
    share a task (a slow one's pool cost is small beside its own time). Never more than a share
    of what is queued, so the last tenants still spread over every worker.
    """
    if not tenant_seconds:
        return 1
    return max(1, min(MAX_BATCH, int(BATCH_SECONDS / tenant_seconds), queued // (2 * workers)))


class WorkerPool:
    """A process pool started on the first submit and shut down by `close`."""

    def __init__(self, tenancy: Tenancy, engines_to_dispose: tuple = ()) -> None:
        self.tenancy = tenancy
        self.engines_to_dispose = engines_to_dispose
        self.executor: ProcessPoolExecutor | None = None
        self.sent: dict[Future, list[tuple]] = {}  # each batch under way, by its future: its run_unit arguments
        self.halted: c_bool | None = None
        # The workers' flag is made when they start (shared memory's imports cost about 15 ms, which a
        # run with nothing pending need not pay); a halt asked before then sets it as it is made.
        self.halt_requested = False

    def submit(self, jobs: int, batch: list[tuple], *, stop_on_failure: bool = False,
               deadline: float | None = None) -> Future:
        """Run `run_unit(*args)` for each args of `batch` in one worker, starting `jobs` workers first if none run.

        The future's result is the batch's results in order; see run_pooled.
        """
        if self.executor is None:
            self.executor = self._start(jobs)
        future = self.executor.submit(run_pooled, batch, stop_on_failure, deadline)
        self.sent[future] = batch
        return future

    def results(self, future: Future) -> list[Pooled]:
        """Return a finished batch's outcomes (see run_pooled).

        A dead worker breaks the whole pool, and every batch under way loses its results: each of
        their tenants gets its own, read back (fleet.units.read_back_result) once the pool is shut down.
        """
        batch = self.sent.pop(future)
        try:
            return future.result()
        except BrokenProcessPool as e:
            self.close()
            return [(read_back_result(*args, f"a worker process died ({e})"), utcnow()) for args in batch]

    def halt(self) -> None:
        """Start no further tenant in the workers (those running finish); safe in a signal handler."""
        self.halt_requested = True
        if self.halted is not None:
            self.halted.value = True

    def _start(self, jobs: int) -> ProcessPoolExecutor:
        # No connection crosses the fork: the parent's pools are emptied first, the children
        # open their own; the revision chain is already loaded and is inherited.
        tenancy = self.tenancy
        tenancy.scripts.get_current_head()
        tenancy.engines.dispose()
        for engine in self.engines_to_dispose:
            engine.dispose()
        process_tenancy(tenancy.settings, tenancy)
        # The plan (a few objects per tenant) is inherited copy-on-write. A worker's garbage
        # collector would write into every inherited object it traverses, copying those pages
        # into each worker: frozen objects are never traversed, so the workers keep sharing them.
        gc.collect()
        gc.freeze()
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        self.halted = context.Value(c_bool, False, lock=False)
        if self.halt_requested:  # asked while the flag was made: a signal handler may have run meanwhile
            self.halted.value = True
        return ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_pooled,
                                   initargs=(tenancy.settings, os.getpid(), self.halted))

    def close(self) -> None:
        """Shut the workers down (waiting for the tenants under way); a later submit starts new ones."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
            self.halted = None
            gc.unfreeze()
