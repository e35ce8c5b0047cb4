"""upgrade_all.py --servers 2: the fleet spread over two PostgreSQL servers, next to its psql floor.

    python bench/upgrade_all.py --tenants 10000 --servers 2 [--rounds 3] [--baseline-tree DIR]

Starts a second, throw-away PostgreSQL cluster (initdb/pg_ctl, as tests/pg_cluster.py does; stopped
and its data folder removed at the end, whatever happens, SIGTERM included), gives every server one
database and puts half the tenants in each (database-per-server tenants: the local half lives in the
control database, the far half's registry rows carry the far database's URL). Then measures, in one
run: the psql floor (one session per server, all tenants), `upgrade-all-tenants` with --jobs 2 (the
floor's concurrency), with --jobs 2 --jobs-per-server 1 (also its shape: one session per server at
any time) and with the default jobs, the no-op run next to its own start-up, and
`tenant-versions`; per-tenant times, peak RSS of each process tree, and where the time goes: catalog
size per server, the bulk version reads, and the per-tenant unit time against the run's wall time
(what is left is dispatch and ledger writes). With `--rounds N` the floor and fleet rows run N
interleaved rounds and print medians; with `--baseline-tree DIR` (another checkout of the project)
each fleet row also runs that tree's manage.py, so a change is measured against the code before it
under the same load, as in bench/upgrade_floor.py.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import psycopg2
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from bench.upgrade_support import ROOT, admin, fresh_copies, measure, psql_sessions, release, stoppable, write_chain


def create_schemas(url: str, slugs: list[str], workdir: Path) -> None:
    """Create each tenant's empty schema through psql (one session; setup, not measured)."""
    from tenants.core.names import quoted_schema

    psql_sessions([(url, [f"CREATE SCHEMA {quoted_schema(s)};" for s in slugs])], workdir)


def register(tenancy, near: list[str], far: list[str], far_url: str) -> None:  # type: ignore[no-untyped-def]
    """Insert the registry rows in bulk, active: the near half in the control database, the far half not."""
    from tenants.core.clock import utcnow
    from tenants.core.control_schema import tenants

    now = utcnow()
    rows = [{"slug": s, "display_name": s, "status": "active", "database_url": url, "created_at": now,
             "updated_at": now}
            for group, url in ((near, None), (far, far_url)) for s in group]
    with tenancy.control_engine.begin() as conn:
        conn.execute(insert(tenants), rows)


def catalog(url: str) -> str:
    """Describe one server's database: pg_class rows and size."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_namespace), "
                        "pg_size_pretty(pg_database_size(current_database()))")
            classes, schemas, size = cur.fetchone()
    finally:
        conn.close()
    return f"{classes} pg_class rows, {schemas} schemas, {size}"


def unit_seconds(url: str) -> tuple[float, int]:
    """Return (sum of the last run's per-tenant unit times in seconds, its result rows)."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(sum(duration_ms), 0) / 1000.0, count(*) FROM tenant_results WHERE run_id = "
                        "(SELECT id FROM migration_runs WHERE kind = 'upgrade' ORDER BY started_at DESC LIMIT 1)")
            seconds, rows = cur.fetchone()
    finally:
        conn.close()
    return float(seconds), rows


def timed_reads(tenancy) -> float:  # type: ignore[no-untyped-def]
    """Return the median seconds of the bulk version read of every tenant (3 reads, in this process)."""
    from tenants.migrate.versions import read_versions

    tenants = tenancy.registry.all()
    times = []
    for _ in range(3):
        started = time.perf_counter()
        read_versions(tenancy, tenants)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_servers(opts: argparse.Namespace) -> None:
    """Run the two-server benchmark (see the module docstring)."""
    from tests.pg_cluster import second_cluster

    with stoppable(), second_cluster() as far_admin:
        _bench(opts, far_admin)


def _bench(opts: argparse.Namespace, far_admin: str) -> None:
    from tenants.core.names import quote_ident, quoted_schema
    from tenants.core.settings import TenantSettings
    from tenants.core.tenancy import Tenancy
    from tenants.migrate.control import ensure_control
    from tenants.migrate.replay import render_range

    n = opts.tenants
    name = f"bench_{uuid.uuid4().hex[:10]}"
    near_url = make_url(opts.pg_url).set(database=name).render_as_string(hide_password=False)
    far_url = make_url(far_admin).set(database=name).render_as_string(hide_password=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench_servers_"))
    tenancy = None
    stack = ExitStack()
    admin(opts.pg_url, "CREATE DATABASE " + quote_ident(name))
    try:
        admin(far_admin, "CREATE DATABASE " + quote_ident(name))
        chain = write_chain(workdir)
        tenancy = Tenancy(TenantSettings(control_url=near_url, tenant_dir=workdir / "tenants", revision_dir=chain))
        ensure_control(tenancy)
        slugs = [f"t{i:05d}" for i in range(n)]
        near, far = slugs[0::2], slugs[1::2]
        register(tenancy, near, far, far_url)
        create_schemas(near_url, near, workdir)
        create_schemas(far_url, far, workdir)
        head = tenancy.head()
        env = {**os.environ, "DATABASE_URL": near_url, "PORTAL_REVISION_DIR": str(chain),
               "PORTAL_INSTANCE_PATH": str(workdir), "PYTHONPATH": str(ROOT)}
        manage = [sys.executable, str(ROOT / "manage.py")]
        print(f"{n} tenants over 2 servers ({len(near)} + {len(far)}), head {head}, database {name}", flush=True)

        # Every measured row starts from a byte-identical copy of the world as it is now (empty
        # schemas, the registry, no ledger): see fresh_copies.
        tenancy.engines.dispose()
        copies = stack.enter_context(fresh_copies([opts.pg_url, far_admin], name))

        def reset_all() -> None:
            tenancy.engines.dispose()  # no idle session of this process across the runs
            copies()

        rendered = render_range(tenancy.scripts, "postgresql", None, head)
        body = "\n".join(sql for _, statements in rendered for sql in statements)

        def scripts(group: list[str]) -> list[str]:
            return ["BEGIN;\nSET LOCAL search_path TO " + quoted_schema(s) + ";\n" + body + "\nCOMMIT;" for s in group]

        trees = [("", ROOT)] + ([(" (baseline tree)", opts.baseline_tree.resolve())] if opts.baseline_tree else [])
        fleet_rows = (("upgrade-all-tenants --jobs 2", ["--jobs", "2"]),
                      ("  --jobs 2 --jobs-per-server 1 (floor's shape)", ["--jobs", "2", "--jobs-per-server", "1"]),
                      ("upgrade-all-tenants (default jobs)", []))
        times: dict[str, list[float]] = {}
        notes: dict[str, str] = {}
        in_unit: dict[str, list[float]] = {}
        floor_label = "floor: psql, 1 session per server"
        for round_no in range(opts.rounds):  # interleaved, so that a slow spell of the machine hits every row alike
            reset_all()
            times.setdefault(floor_label, []).append(
                psql_sessions([(near_url, scripts(near)), (far_url, scripts(far))], workdir))
            for base_label, extra in fleet_rows:
                for suffix, tree in trees:
                    label = base_label + suffix
                    reset_all()
                    memory: dict = {}
                    seconds, rss, done = measure([sys.executable, str(tree / "manage.py"), "upgrade-all-tenants",
                                                  "--quiet", *extra], {**env, "PYTHONPATH": str(tree)}, memory)
                    if done.returncode:
                        raise SystemExit(f"{label} failed ({done.returncode}): {done.stdout[-2000:]} "
                                         f"{done.stderr[-2000:]}")
                    times.setdefault(label, []).append(seconds)
                    mib = {key: value / 2**20 for key, value in memory.items()}
                    notes[label] = (f"peak RSS {rss / 2**20:.0f} MiB (PSS {mib['pss']:.0f}, runner "
                                    f"{mib['parent']:.0f}, a worker's own {mib['worker_uss']:.0f})")
                    unit_s, results = unit_seconds(near_url)
                    if results != n:
                        raise SystemExit(f"{label}: {results} results in the ledger, not {n}")
                    in_unit.setdefault(label, []).append(unit_s / n * 1000)
            print(f"  round {round_no + 1}: " + ", ".join(f"{k.strip()} {v[-1]:.1f} s" for k, v in times.items()),
                  flush=True)
        floor = statistics.median(times[floor_label])
        rows = [(label + (f", median of {opts.rounds}" if opts.rounds > 1 else ""), statistics.median(values),
                 notes.get(label, "")) for label, values in times.items()]
        breakdown = [f"{label.strip()}: sum of per-tenant unit time {statistics.median(values):.2f} ms per tenant"
                     for label, values in in_unit.items()]

        noop, helps, versions = [], [], []
        for _ in range(3):  # interleaved, so that load from other processes hits each alike
            helps.append(measure([*manage, "upgrade-all-tenants", "--help"], env))
            noop.append(measure([*manage, "upgrade-all-tenants", "--quiet"], env))
            versions.append(measure([*manage, "tenant-versions", "--json"], env))
        for label, runs in (("no-op run (all at head), median of 3", noop),
                            ("tenant-versions --json, median of 3", versions),
                            ("start-up: upgrade-all-tenants --help, median 3", helps)):
            if any(done.returncode for _, _, done in runs):
                raise SystemExit(f"{label} failed: {runs[0][2].stderr[-2000:]}")
            rows.append((label, statistics.median(s for s, _, _ in runs),
                         f"peak RSS {max(r for _, r, _ in runs) / 2**20:.0f} MiB"))

        print(f"\n{'':<48} {'seconds':>8} {'ms/tenant':>10} {'x floor':>8}")
        for label, seconds, note in rows:
            print(f"{label:<48} {seconds:8.2f} {seconds / n * 1000:10.2f} {seconds / floor:8.2f}  {note}")
        print(f"\nwhere the time goes ({n} tenants):")
        print(f"  catalog: near {catalog(near_url)}; far {catalog(far_url)}")
        print(f"  bulk version reads of every tenant (in-process, median of 3): {timed_reads(tenancy):.3f} s")
        for line in breakdown:
            print(f"  {line}")
    finally:
        stack.close()
        release(tenancy, opts.pg_url, name, workdir, keep=opts.keep)
