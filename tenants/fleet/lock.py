"""The fleet lock: one row in the control plane saying which run is working on the fleet.

Taking it is one INSERT on the row's primary key, so of two runs started at once exactly one
wins. The row names its holder (host, pid, run id, start, heartbeat, and its own staleness
limit). A holder on this host is stale only when its pid is gone; a holder on another host when
its heartbeat is older than the limit *it* recorded (PORTAL_LOCK_STALE_AFTER where it runs), not
the newcomer's. A stale holder is reported and replaced. The holder beats from a thread of its
own (Heartbeat) for the whole run, so a long tenant never makes it look dead; a beat that finds
the row gone tells the run it lost the lock.
"""

import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tenants.core.clock import aware, utcnow
from tenants.core.control_schema import fleet_locks, migration_runs
from tenants.core.engines import make_engine
from tenants.core.processes import pid_alive
from tenants.fleet.errors import FleetLocked

__all__ = ["FleetLock", "Heartbeat", "LockHolder", "pid_alive", "stale_reason"]

LOCK_NAME = "fleet"


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) the fleet lock."""

    run_id: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    stale_after: float | None = None

    def describe(self) -> str:
        age = (utcnow() - aware(self.heartbeat_at)).total_seconds()
        return (f"run {self.run_id} (pid {self.pid} on {self.host}, since "
                f"{aware(self.acquired_at):%Y-%m-%d %H:%M:%S} UTC, last heartbeat {age:.0f} s ago)")


def stale_reason(holder: LockHolder, default_stale_after: float) -> str | None:
    """Return why `holder` is stale, or None if it may still be working.

    On this host the pid decides (a live process is never stale, however slow its tenant); elsewhere
    the holder's own recorded limit (`default_stale_after` only for rows written before it was kept).
    """
    if holder.host == socket.gethostname():
        return None if pid_alive(holder.pid) else f"its process {holder.pid} on {holder.host} is gone"
    stale_after = holder.stale_after or default_stale_after
    age = (utcnow() - aware(holder.heartbeat_at)).total_seconds()
    if age > stale_after:
        return f"no heartbeat for {age:.0f} s (stale after {stale_after:.0f} s)"
    return None


class FleetLock:
    """Take, keep alive and release the fleet lock row."""

    def __init__(self, engine: Engine, *, name: str = LOCK_NAME, stale_after: float = 600.0) -> None:
        self.engine = engine
        self.name = name
        self.stale_after = stale_after
        self.token = str(uuid.uuid4())
        self.held = False

    def holder(self) -> LockHolder | None:
        """Return the current holder, if any."""
        c = fleet_locks.c
        with self.engine.connect() as conn:
            row = conn.execute(select(c.run_id, c.host, c.pid, c.acquired_at, c.heartbeat_at, c.stale_after)
                               .where(c.name == self.name)).first()
        return LockHolder(*row) if row else None

    def acquire(self) -> str | None:
        """Take the lock; return a note if a stale holder was replaced; raise FleetLocked if held."""
        for _attempt in range(3):
            if self._insert():
                self.held = True
                return None
            holder = self.holder()
            if holder is None:
                continue  # released between our INSERT and our read: try again
            reason = stale_reason(holder, self.stale_after)
            if reason is None:
                raise FleetLocked(f"the fleet lock is held by {holder.describe()}: nothing was changed; "
                                  "wait for that run or, if it is dead, it is taken over once stale")
            if self._take_over(holder):
                self.held = True
                return f"took over the fleet lock from stale {holder.describe()}: {reason}"
        raise FleetLocked("could not take the fleet lock: other runs keep taking it")

    def _values(self) -> dict:
        now = utcnow()
        return {"name": self.name, "run_id": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                "acquired_at": now, "heartbeat_at": now, "stale_after": self.stale_after}

    def _insert(self) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(fleet_locks).values(**self._values()))
            return True
        except IntegrityError:
            return False

    def _take_over(self, holder: LockHolder) -> bool:
        c = fleet_locks.c
        with self.engine.begin() as conn:
            gone = conn.execute(delete(fleet_locks).where(c.name == self.name, c.run_id == holder.run_id))
            if gone.rowcount != 1:
                return False  # someone else replaced it first
            conn.execute(insert(fleet_locks).values(**self._values()))
            conn.execute(update(migration_runs)
                         .where(migration_runs.c.id == holder.run_id, migration_runs.c.status == "running")
                         .values(status="aborted", finished_at=utcnow()))
        return True

    def adopt_run(self, run_id: str) -> None:
        """Name the run that holds the lock (the run row is made after the lock is taken)."""
        self._update(run_id=run_id)
        self.token = run_id

    def heartbeat(self, engine: Engine | None = None) -> bool:
        """Tell other runs this holder is alive; return False if the row is no longer ours (lock lost)."""
        return self._update(engine, heartbeat_at=utcnow())

    def _update(self, engine: Engine | None = None, **values: object) -> bool:
        c = fleet_locks.c
        with (engine or self.engine).begin() as conn:
            done = conn.execute(update(fleet_locks).where(c.name == self.name, c.run_id == self.token)
                                .values(**values))
        return done.rowcount == 1

    def release(self) -> None:
        """Give the lock back (only if this run still holds it)."""
        if not self.held:
            return
        c = fleet_locks.c
        with self.engine.begin() as conn:
            conn.execute(delete(fleet_locks).where(c.name == self.name, c.run_id == self.token))
        self.held = False


class Heartbeat:
    """Beat for a held lock from a thread of its own, every `every` seconds, until stopped.

    It uses a connection of its own each time (no pool, so nothing of it crosses a fork of the
    runner's workers; `pause` is held around each beat and may be taken around a fork). A beat
    that finds the row gone sets `lost` and ends the thread; a beat that cannot reach the control
    plane is tried again next time (staleness is for the others to judge).
    """

    def __init__(self, lock: FleetLock, every: float) -> None:
        self.lock = lock
        self.every = every
        self.lost = threading.Event()
        self.pause = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start beating (a daemon thread: it never keeps a dying process alive)."""
        self._thread = threading.Thread(target=self._loop, name="fleet-lock-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        engine = make_engine(self.lock.engine.url.render_as_string(hide_password=False), pooled=False)
        try:
            while not self._stopping.wait(self.every):
                with self.pause:
                    try:
                        alive = self.lock.heartbeat(engine)
                    except Exception:  # the control plane is briefly away: try again next beat
                        continue
                if not alive:
                    self.lost.set()
                    return
        finally:
            engine.dispose()

    def stop(self) -> None:
        """Stop beating and wait for the thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
