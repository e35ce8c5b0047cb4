"""The fleet runner's worker processes: forked once per run, with no connection and little garbage across the fork."""

import gc
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

from tenants.core.tenancy import Tenancy
from tenants.fleet.units import init_worker, process_tenancy, run_unit


class WorkerPool:
    """A process pool started on the first submit and shut down by `close`."""

    def __init__(self, tenancy: Tenancy, engines_to_dispose: tuple = ()) -> None:
        self.tenancy = tenancy
        self.engines_to_dispose = engines_to_dispose
        self.executor: ProcessPoolExecutor | None = None

    def submit(self, jobs: int, args: tuple) -> Future:
        """Run `run_unit(*args)` in a worker, starting `jobs` workers first if none run."""
        if self.executor is None:
            self.executor = self._start(jobs)
        return self.executor.submit(run_unit, *args)

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
        executor = ProcessPoolExecutor(jobs, mp_context=context, initializer=init_worker,
                                       initargs=(tenancy.settings, os.getpid()))
        return executor

    def close(self) -> None:
        """Shut the workers down (waiting for the tenants under way); a later submit starts new ones."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
            gc.unfreeze()
