"""Tenants grouped by database server, and a concurrency bound per server.

A server is where a tenant's DDL lands: PostgreSQL `host:port` (every database and schema on
that server shares its CPU, disk and WAL), or, for SQLite tenants, the directory that holds
the tenant's file (files in one directory share one disk; each file is also its own lock).
`--jobs-per-server N` lets at most N tenants of one server run at once, and the pool takes
tenants from the servers in turn, so no server is flooded while another idles.
"""

import os
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import make_url

from tenants.core.engines import display_url
from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.migrate.plan import Plan, TenantPlan


def server_key(url: str) -> str:
    """Return the server a database URL points at: `postgresql://host:port` or `sqlite:<directory>`."""
    if url.startswith("sqlite"):  # resolved against the file system as it is now: not remembered
        return _parsed_key(url)
    return _server_key(url)


@lru_cache(maxsize=1024)  # asked once per tenant, of a few URLs: each is parsed once and its key shared
def _server_key(url: str) -> str:
    return _parsed_key(url)


def _parsed_key(url: str) -> str:
    try:
        parsed = make_url(url)
    except Exception:  # an unparsable URL fails at connect time; group it by its own text
        return display_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return f"sqlite:{Path(parsed.database or '').resolve().parent}"
    return f"{backend}://{parsed.host or 'localhost'}:{parsed.port or 5432}"


def tenant_server(settings: TenantSettings, item: TenantPlan) -> str:
    """Return the server of a planned tenant (its own URL, else the control database, else its file)."""
    url = item.tenant.database_url or settings.control_url
    if not item.tenant.database_url and url.startswith("sqlite"):
        return f"sqlite:{Path(settings.tenant_dir).resolve()}"
    return server_key(url)


def by_server(settings: TenantSettings, items: Iterable[TenantPlan]) -> dict[str, list[TenantPlan]]:
    """Group tenants by server, keeping each server's tenants in plan order."""
    groups: dict[str, list[TenantPlan]] = defaultdict(list)
    for item in items:
        groups[tenant_server(settings, item)].append(item)
    return dict(groups)


def interleave(groups: dict[str, list[TenantPlan]]) -> list[TenantPlan]:
    """Return the tenants taking one from each server in turn (a, b, c, a, b, c, ...)."""
    queues = [list(items) for items in groups.values()]
    order: list[TenantPlan] = []
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    return order


def pool_size(jobs: int | None, default: int, per_server: int | None, servers: int) -> int:
    """Return the number of local worker processes.

    --jobs wins; with only --jobs-per-server, N per server with pending tenants, up to twice the
    CPUs (tenant work mostly waits on its database) and never fewer than the default.
    """
    if jobs:
        return jobs
    if not per_server:
        return default
    return max(default, min(per_server * servers, 2 * (os.cpu_count() or 1)))


class ServerSlots:
    """Hand out tenants so that at most `per_server` of one server run at once."""

    def __init__(self, settings: TenantSettings, per_server: int | None) -> None:
        self.settings = settings
        self.per_server = per_server
        self.running: dict[str, int] = defaultdict(int)
        # By the tenant's own database URL (None: the control database or the tenant folder): a
        # server is a function of that URL alone, and a fleet has few (an entry per tenant cost
        # the runner memory that grew with the fleet).
        self.servers: dict[str | None, str] = {}
        self.queued: set[str] = set()  # the servers of the tenants `order` was given

    def server(self, item: TenantPlan) -> str:
        """Return the tenant's server (parsed once per database URL)."""
        url = item.tenant.database_url
        if url not in self.servers:
            self.servers[url] = tenant_server(self.settings, item)
        return self.servers[url]

    def order(self, items: list[TenantPlan]) -> list[TenantPlan]:
        """Return `items` with the servers taking turns."""
        groups: dict[str, list[TenantPlan]] = defaultdict(list)
        for item in items:
            groups[self.server(item)].append(item)
        self.queued |= set(groups)
        return interleave(groups)

    def full(self, server: str) -> bool:
        """Return whether `server` is at its --jobs-per-server bound."""
        return self.per_server is not None and self.running[server] >= self.per_server

    def take(self, queue: list[TenantPlan], server: str | None = None) -> TenantPlan | None:
        """Remove and return the first queued tenant (of `server`, if given) whose server has a free slot, else None."""
        # Nothing to look for when the servers asked about are all at their bound: a scan of the
        # whole queue per dispatch made a bounded run quadratic (283 s against the floor's 105 at
        # 10,000 tenants over two servers).
        if self.full(server) if server is not None else (self.queued and all(map(self.full, self.queued))):
            return None
        for index, item in enumerate(queue):
            its = self.server(item)
            if (server is None or its == server) and not self.full(its):
                self.running[its] += 1
                return queue.pop(index)
        return None

    def take_batch(self, queue: list[TenantPlan], size: int) -> list[TenantPlan]:
        """Remove and return up to `size` queued tenants, each taking its slot.

        A batch runs in one worker, one tenant after another. With --jobs-per-server it holds one
        server's tenants: tenants of two servers in one batch would run one after the other where
        the bound meant them to run side by side. Without a bound it follows the queue's order,
        in which the servers take turns, so each worker still alternates between servers.
        """
        first = self.take(queue)
        if first is None:
            return []
        batch, only = [first], self.server(first) if self.per_server is not None else None
        while len(batch) < size and (item := self.take(queue, only)) is not None:
            batch.append(item)
        return batch

    def release(self, item: TenantPlan) -> None:
        """Free the slot a finished tenant held."""
        self.running[self.server(item)] -= 1


def assign_slots(settings: TenantSettings, items: list[TenantPlan],
                 per_server: int) -> list[tuple[TenantPlan, str, int, int]]:
    """Split each server's tenants into `per_server` slots: [(item, server, slot, position)].

    Tenant i of a server goes to slot i mod N; a slot runs its tenants one after another, so
    a server never has more than N tenants under way, whoever runs them.
    """
    placed = []
    for server, group in by_server(settings, items).items():
        for index, item in enumerate(group):
            placed.append((item, server, index % per_server, index // per_server))
    return placed


def default_jobs(tenancy: Tenancy, plan: Plan) -> int:
    """Return a worker count that suits the databases: CPUs + 1 (at most 4) on PostgreSQL, 2 on SQLite files.

    A PostgreSQL worker spends part of each tenant waiting (round trips, the commit's WAL flush),
    so one worker more than the CPUs keeps them busy: measured on 2 cores (600 tenants, A/B/A/B),
    3 workers finished 8-11% sooner than 2; 4 was not consistently faster than 3 and costs one
    more process (~60 MiB).
    """
    cpus = os.cpu_count() or 1
    urls = {item.tenant.database_url or tenancy.settings.control_url for item in plan.pending}
    if any(url.startswith("postgresql") for url in urls):
        return max(1, min(4, cpus + 1))
    return max(1, min(2, cpus))
