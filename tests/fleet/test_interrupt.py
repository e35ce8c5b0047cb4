"""Ctrl-C as a request to stop while a pool's workers run the tenants (tenants.fleet.interrupt)."""

import os
import signal
import threading

from tenants.fleet.interrupt import interrupt_requests_stop


def test_inside_ctrl_c_calls_back_instead_of_raising_and_the_old_handler_comes_back() -> None:
    asked: list[int] = []
    before = signal.getsignal(signal.SIGINT)
    with interrupt_requests_stop(lambda: asked.append(1)):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C asks again; it does not raise either
    assert asked == [1, 1]
    assert signal.getsignal(signal.SIGINT) is before


def test_an_ignored_ctrl_c_stays_ignored() -> None:
    asked: list[int] = []
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupt_requests_stop(lambda: asked.append(1)):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
        assert asked == []
    finally:
        signal.signal(signal.SIGINT, before)


def test_outside_the_main_thread_it_changes_nothing() -> None:
    errors: list[BaseException] = []
    before = signal.getsignal(signal.SIGINT)

    def run() -> None:
        try:
            with interrupt_requests_stop(lambda: None):
                pass
        except BaseException as e:  # signal.signal outside the main thread raises ValueError
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == [] and signal.getsignal(signal.SIGINT) is before
