"""Tenants grouped by database server, and a concurrency bound per server.

A server is where a tenant's DDL lands: PostgreSQL `host:port` (every database and schema on
that server shares its CPU, disk and WAL), or, for SQLite tenants, the directory that holds
the tenant's file (files in one directory share one disk; each file is also its own lock).
`--jobs-per-server N` lets at most N tenants of one server run at once, and the pool takes
tenants from the servers in turn, so no server is flooded while another idles.
"""

import os
from collections import defaultdict, deque
from collections.abc import Iterable
from functools import lru_cache
from itertools import zip_longest
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
    order: list[TenantPlan] = []
    for row in zip_longest(*groups.values()):  # not list.pop(0) per tenant: quadratic in a server's tenants
        order.extend(item for item in row if item is not None)
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
    """A run's queued tenants by server, handed out in batches, at most `per_server` of one server at once.

    A batch runs in one worker, one tenant after another, so it holds one server's tenants and
    one slot of that server: `--jobs-per-server 1` still lets a server's tenants travel in
    batches. The next batch comes from the server with the fewest batches under way (the
    servers taking turns on a tie), so workers spread over the servers instead of meeting on
    one. The runner keeps no more batches than workers under way while several servers have
    tenants queued: a batch waiting in the pool's queue goes to whichever worker frees first,
    wherever it was (two workers meeting on one server made each tenant there about 20% slower).
    """

    def __init__(self, settings: TenantSettings, per_server: int | None) -> None:
        self.settings = settings
        self.per_server = per_server
        # By the tenant's own database URL (None: the control database or the tenant folder): a
        # server is a function of that URL alone, and a fleet has few (an entry per tenant cost
        # the runner memory that grew with the fleet).
        self.servers: dict[str | None, str] = {}
        self.queues: dict[str, deque[TenantPlan]] = {}  # each server's queued tenants, in plan order
        self.running: dict[str, int] = defaultdict(int)  # batches handed out and not yet released
        self.turn = 0  # the server that goes first on a tie (an index into self.queues)

    def server(self, item: TenantPlan) -> str:
        """Return the tenant's server (parsed once per database URL)."""
        url = item.tenant.database_url
        if url not in self.servers:
            self.servers[url] = tenant_server(self.settings, item)
        return self.servers[url]

    def add(self, items: Iterable[TenantPlan]) -> None:
        """Queue `items` behind the tenants queued already, each on its server's queue."""
        for item in items:
            self.queues.setdefault(self.server(item), deque()).append(item)

    def queued(self) -> int:
        """Return how many tenants wait to be handed out."""
        return sum(map(len, self.queues.values()))

    def servers_queued(self) -> int:
        """Return how many servers have tenants waiting."""
        return sum(1 for queue in self.queues.values() if queue)

    def take_batch(self, size: int) -> list[TenantPlan]:
        """Remove and return up to `size` tenants of one server, taking its slot; [] when no server can take one."""
        servers = list(self.queues)
        free = [(self.running[server], (index - self.turn) % len(servers), index)
                for index, server in enumerate(servers)
                if self.queues[server] and (self.per_server is None or self.running[server] < self.per_server)]
        if not free:
            return []
        index = min(free)[2]
        server, self.turn = servers[index], (index + 1) % len(servers)
        queue = self.queues[server]
        self.running[server] += 1
        return [queue.popleft() for _ in range(min(size, len(queue)))]

    def release(self, batch: list[TenantPlan]) -> None:
        """Free the slot a finished batch held."""
        self.running[self.server(batch[0])] -= 1

    def drain(self) -> list[TenantPlan]:
        """Remove and return every tenant still queued, the servers taking turns."""
        left = interleave({server: list(queue) for server, queue in self.queues.items()})
        for queue in self.queues.values():
            queue.clear()
        return left


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
    urls = {url or tenancy.settings.control_url for url in plan.pending_urls()}
    if any(url.startswith("postgresql") for url in urls):
        return max(1, min(4, cpus + 1))
    return max(1, min(2, cpus))
