"""Operators under faults: run manage.py, keep every output, and check that none shows the password.

Fault tests reach PostgreSQL with a URL carrying SECRET as its password (the local trust login
ignores it), so a password printed by any code path shows up in some output.
"""

import os
import signal
import subprocess
import sys
import time

import psycopg2
from sqlalchemy.engine import make_url

from tenants.core.settings import PROJECT_ROOT
from tests.conftest import run_manage

SECRET = "Tr0ub4dor-s3cret"


def with_secret(url: str) -> str:
    """Return `url` with SECRET as its password."""
    return make_url(url).set(password=SECRET).render_as_string(hide_password=False)


class Operator:
    """Runs manage.py like an operator and keeps every output, to check none shows the password."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.outputs: list[str] = []
        self.started: list[subprocess.Popen] = []

    def run(self, args: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        result = run_manage(args, {**self.env, **env}, timeout=timeout)
        self.outputs += [result.stdout, result.stderr]
        return result

    def start(self, args: list[str], *, before: str | None = None, **env: str) -> subprocess.Popen:
        """Start manage.py `args`; `before` is Python run first in its own process (a fault put in place)."""
        full = {**os.environ, **self.env, **env, "PYTHONPATH": str(PROJECT_ROOT)}
        command = [sys.executable, str(PROJECT_ROOT / "manage.py"), *args]
        if before is not None:
            command = [sys.executable, "-c", f"{before}\nimport runpy, sys\nsys.argv = {command[1:]!r}\n"
                                             "runpy.run_path(sys.argv[0], run_name='__main__')\n"]
        process = subprocess.Popen(command, env=full,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.started.append(process)
        return process

    def wait(self, process: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
        out, err = process.communicate(timeout=timeout)
        self.outputs += [out, err]
        return out, err

    def close(self) -> None:
        for process in self.started:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # its group: workers it may have left behind too
            except ProcessLookupError:
                pass
            if process.stdout is not None and not process.stdout.closed:
                process.communicate()
            process.wait()
        leaked = [text for text in self.outputs if SECRET in text]
        assert not leaked, leaked[0]


def wait_for(condition, timeout: float = 60):  # type: ignore[no-untyped-def]
    """Return condition()'s first true value, polled every 0.1 s; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def other_sessions(url: str, where: str = "true") -> int:
    """Count the sessions of `url`'s database, other than this one, that match `where` (the test's own SQL)."""
    conn = psycopg2.connect(make_url(url).render_as_string(hide_password=False))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        f"AND pid <> pg_backend_pid() AND ({where})")
            return cur.fetchone()[0]
    finally:
        conn.close()


def ctrl_c_around(module: str, name: str, *, after: bool = False) -> str:
    """Code for Operator.start(before=...): `module.name` sends this process SIGINT (Ctrl-C) before it runs, or
    `after` it returned; the call itself goes on as it was."""
    call = "result = real(*args, **kwargs)"
    kill = "os.kill(os.getpid(), signal.SIGINT)"
    first, then = (call, kill) if after else (kill, call)
    return (f"import importlib, os, signal\ntarget = importlib.import_module({module!r})\nreal = target.{name}\n"
            f"def interrupted(*args, **kwargs):\n    {first}\n    {then}\n    return result\n"
            f"target.{name} = interrupted\n")
