"""Ctrl-C as a request to stop, for a run whose tenants run in other processes.

Raised as KeyboardInterrupt, a Ctrl-C lands wherever the runner is: between writing one result
to the ledger and adding it to the report, say, so a finished tenant missed the report and the
run row stayed `running`. While its workers run the tenants, the runner has no tenant of its
own to abandon, so Ctrl-C there only asks it to stop: the handler records the request and
halts the pool (a plain store into shared memory), and the runner stops at its next turn.
"""

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def interrupt_requests_stop(on_interrupt: Callable[[], None]) -> Iterator[None]:
    """Inside, SIGINT calls `on_interrupt` (it must only set flags) instead of raising KeyboardInterrupt.

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
