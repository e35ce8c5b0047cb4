"""Scaffolding for the scale-out tests: databases on a second server, Celery workers, run timelines."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg2
import redis
from sqlalchemy import Engine, select

from tenants.core.control_schema import tenant_results
from tenants.core.settings import PROJECT_ROOT
from tests.conftest import create_pg_database, drop_pg_database

# A Redis database of the Celery tests' own; each test also has a queue of its own.
TEST_BROKER = os.environ.get("PORTAL_TEST_BROKER", "redis://127.0.0.1:6379/11")


@contextmanager
def database_on(admin_url: str, prefix: str = "tp_far") -> Iterator[str]:
    """Create a uniquely named database on the server of `admin_url`; yield its URL; drop it after."""
    url = create_pg_database(prefix, admin_url)
    try:
        yield url
    finally:
        drop_pg_database(url)


def celery_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return environment variables for a broker queue no other test uses."""
    return {"CELERY_BROKER_URL": TEST_BROKER, "CELERY_RESULT_BACKEND": TEST_BROKER,
            "CELERY_QUEUE": f"tp_test_{uuid.uuid4().hex[:12]}", **(extra or {})}


def purge_queue(env: dict[str, str]) -> None:
    """Delete the test's queue (and its routing keys) from Redis."""
    client = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    try:
        queue = env["CELERY_QUEUE"]  # the queue, and kombu's routing keys for its exchange of the same name
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    finally:
        client.close()


def start_worker(env: dict[str, str], log: Path, concurrency: int = 1) -> subprocess.Popen:
    """Start `manage.py worker` in a process group of its own (see wait_ready)."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)}
    handle = open(log, "w")  # closed with the process by stop_worker
    proc = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), "worker", "--concurrency", str(concurrency),
         "--loglevel", "INFO", "--without-mingle", "--without-gossip", "--without-heartbeat",
         "-n", f"{log.stem}@%h"],
        env=full_env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    proc.log_handle = handle  # type: ignore[attr-defined]
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


def wait_ready(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until the worker says it is ready to take tasks."""
    log: Path = proc.log_path  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while " ready." not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def kill_worker(proc: subprocess.Popen) -> None:
    """SIGKILL the worker and its pool processes at once, as a machine failure would."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def stop_worker(proc: subprocess.Popen) -> None:
    """Stop a worker (warm shutdown), killing its group if it does not stop in time."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            kill_worker(proc)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # pool processes left behind by a killed parent
    except ProcessLookupError:
        pass
    proc.log_handle.close()  # type: ignore[attr-defined]


@contextmanager
def workers(env: dict[str, str], folder: Path, count: int, concurrency: int = 1) -> Iterator[list[subprocess.Popen]]:
    """Run `count` workers for the test's queue; stop them and purge the queue afterwards."""
    started: list[subprocess.Popen] = []
    try:
        for index in range(count):
            started.append(start_worker(env, folder / f"worker{index}.log", concurrency))
        for proc in started:
            wait_ready(proc)
        yield started
    finally:
        for proc in started:
            stop_worker(proc)
        purge_queue(env)


def intervals(engine: Engine, run_id: str) -> dict[str, tuple]:
    """Return {slug: (start, end)} of each tenant's unit in a run, from its ledger row."""
    c = tenant_results.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.tenant_slug, c.started_at, c.duration_ms).where(c.run_id == run_id)).all()
    return {slug: (start, start + timedelta(milliseconds=ms)) for slug, start, ms in rows}


SLACK = timedelta(milliseconds=1)


def max_overlap(spans: list[tuple], slack: timedelta = SLACK) -> int:
    """Return the most spans open at one instant (an end at the same instant as a start does not overlap).

    Spans that overlap by less than `slack` do not count: the ledger dates a span from its start and
    its duration, read on two clocks microseconds apart, so one tenant's span may seem to end a few
    microseconds after the next one on the same worker began. Tenants truly side by side overlap by
    most of their time.
    """
    ends = [max(start, end - slack) for start, end in spans]
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for end in ends], key=lambda e: (e[0], e[1]))
    open_now = most = 0
    for _, change in events:
        open_now += change
        most = max(most, open_now)
    return most


def active_sleeps(urls: list[str]) -> int:
    """Count backends running pg_sleep in these databases right now (other tests' databases not counted)."""
    count = 0
    for url in urls:
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                            "AND datname = current_database() AND pid <> pg_backend_pid()", ("%pg_sleep%",))
                count += cur.fetchone()[0]
        finally:
            conn.close()
    return count
