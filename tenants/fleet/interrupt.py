"""Ctrl-C as a request to stop, handled by the run instead of raised wherever the runner happens to be.

Raised as KeyboardInterrupt, a Ctrl-C lands anywhere: between writing one result to the ledger
and adding it to the report, say, so a finished tenant missed the report and the run row stayed
`running`. Inside, the run's own callback decides: it records the request and halts the pool
(a plain store into shared memory), and raises KeyboardInterrupt only where the work under way
can be abandoned, a tenant's transaction running in this process (fleet.runner).
"""

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def interrupt_requests_stop(on_interrupt: Callable[[], None]) -> Iterator[None]:
    """Inside, SIGINT calls `on_interrupt` (set flags; raise only where it is safe) instead of raising.

    Only the main thread can handle signals: elsewhere (a run started from a thread) this does nothing;
    so it does where SIGINT is ignored (a job started in the background, or under nohup): it stays ignored.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return

    def handler(signum: int, frame: object) -> None:
        on_interrupt()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
