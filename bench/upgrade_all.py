#!/usr/bin/env python
"""Benchmark upgrade-all-tenants against a pure-SQL floor and a naive per-tenant loop.

    python bench/upgrade_all.py                 # N = 200 tenants (about 2 minutes here)
    python bench/upgrade_all.py --tenants 1000  # the full figure

Creates a scratch database on the local PostgreSQL with N tenant schemas and a 10-revision chain
(3 tables, column adds, 2 indexes), then measures in the same run:
  floor        the same DDL as plain SQL through psql, each tenant in its own transaction with
               its version row, in one session and in two;
  naive        one `manage.py upgrade-tenant SLUG` process per tenant, on a sample,
               extrapolated to N (and said so);
  rehearsal    `upgrade-all-tenants --rehearse` (default jobs): every tenant migrated and rolled back;
  fleet        `manage.py upgrade-all-tenants` with --jobs 1, with the default jobs, and with
               the default jobs but --no-replay (Alembic online per tenant);
  no-op        the same command with every tenant already at head, next to its own start-up
               (`manage.py upgrade-all-tenants --help`: the same imports, no work; bench/noop.py
               measures and profiles the no-op alone at any fleet size);
  celery       with --via celery: the same upgrade through `--via celery` with 1, 2 and 4 Celery
               workers (one process each, started and warm before the clock starts; broker from
               CELERY_BROKER_URL, default local Redis, on a queue of the benchmark's own), compared
               with the in-process default run;
and the peak RSS of each command's whole process tree (the sum over the runner and its workers).
The scratch database is dropped at the end unless --keep.

    python bench/upgrade_all.py --via celery    # adds the Celery rows (about 1 more minute)
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project's modules are imported inside the functions below

def start_worker(env: dict, log: Path) -> subprocess.Popen:
    """Start one Celery worker process (concurrency 1) and wait until it takes tasks."""
    handle = open(log, "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "worker", "--concurrency", "1",
                             "--without-mingle", "--without-gossip", "--without-heartbeat", "-n", f"{log.stem}@%h"],
                            env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def celery_rows(opts: argparse.Namespace, manage: list[str], env: dict, fresh: Callable[[], None],
                workdir: Path) -> list[tuple[str, float, str]]:
    """Upgrade every tenant through --via celery with 1, 2, 4 warm workers, each from `fresh()`; one row each."""
    from bench.upgrade_support import measure

    counts = [int(c) for c in opts.workers.split(",")]
    queue_env = {**env, "CELERY_QUEUE": f"bench_{uuid.uuid4().hex[:10]}"}
    rows = []
    # The in-process pool with as many processes as the most workers: the like-for-like comparison.
    fresh()
    seconds, rss, done = measure([*manage, "upgrade-all-tenants", "--quiet", "--jobs", str(max(counts))], env)
    if done.returncode:
        raise SystemExit(f"--jobs {max(counts)} failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    rows.append((f"upgrade-all-tenants --jobs {max(counts)}", seconds, f"peak RSS {rss / 2**20:.0f} MiB"))
    print(f"  upgrade-all-tenants --jobs {max(counts)}: {seconds:.1f} s", flush=True)
    for count in counts:
        fresh()
        procs = []
        try:
            for index in range(count):
                procs.append(start_worker(queue_env, workdir / f"worker{count}_{index}.log"))
            seconds, rss, done = measure([*manage, "upgrade-all-tenants", "--quiet", "--via", "celery",
                                          "--jobs-per-server", str(max(counts))], queue_env)
        finally:
            stop_workers(procs)
        if done.returncode:
            raise SystemExit(f"--via celery failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
        label = f"--via celery, {count} worker{'s' if count > 1 else ''}"
        rows.append((label, seconds, f"command RSS {rss / 2**20:.0f} MiB"))
        print(f"  {label}: {seconds:.1f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200, help="number of tenant schemas (default 200)")
    parser.add_argument("--sample", type=int, default=5, help="tenants for the naive per-process baseline")
    parser.add_argument("--pg-url", default=os.environ.get("PORTAL_TEST_PG_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--via", choices=["local", "celery"], default="local",
                        help="celery: also run the upgrade through Celery workers")
    parser.add_argument("--workers", default="1,2,4", help="worker counts for --via celery (default 1,2,4)")
    parser.add_argument("--servers", type=int, choices=[1, 2], default=1,
                        help="2: half the tenants on a second, throw-away server (bench/upgrade_servers.py)")
    parser.add_argument("--rounds", type=int, default=1, help="with --servers 2: interleaved rounds, medians")
    parser.add_argument("--baseline-tree", type=Path,
                        help="with --servers 2: another checkout whose manage.py also runs each fleet row")
    opts = parser.parse_args()
    if opts.servers == 1 and (opts.rounds != 1 or opts.baseline_tree):
        parser.error("--rounds and --baseline-tree go with --servers 2 (bench/upgrade_floor.py has them for 1)")
    if opts.servers == 2:
        from bench.upgrade_servers import run_servers

        run_servers(opts)
        return
    from bench.upgrade_support import (
        CHAIN,
        admin,
        fresh_copies,
        measure,
        psql_floor,
        release,
        reset,
        stoppable,
        write_chain,
    )
    from tenants.core.names import quote_ident, quoted_schema
    from tenants.core.settings import TenantSettings
    from tenants.core.tenancy import Tenancy
    from tenants.migrate.control import ensure_control
    from tenants.migrate.replay import render_range

    n = opts.tenants
    name = f"bench_{uuid.uuid4().hex[:10]}"
    db_url = make_url(opts.pg_url).set(database=name).render_as_string(hide_password=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench_upgrade_"))
    tenancy = None
    stack = ExitStack()
    stack.enter_context(stoppable())  # SIGTERM too drops the scratch database (release, below)
    try:
        admin(opts.pg_url, "CREATE DATABASE " + quote_ident(name))
        chain = write_chain(workdir)
        settings = TenantSettings(control_url=db_url, tenant_dir=workdir / "tenants", revision_dir=chain)
        tenancy = Tenancy(settings)
        ensure_control(tenancy)
        slugs = [f"t{i:05d}" for i in range(n)]
        for slug in slugs:
            tenancy.registry.add(slug, slug, None)
            tenancy.registry.set_status(slug, "active")
        reset(db_url, slugs)  # the tenants' empty schemas: every row starts from a copy of this
        head = tenancy.head()
        env = {**os.environ, "DATABASE_URL": db_url, "PORTAL_REVISION_DIR": str(chain),
               "PORTAL_INSTANCE_PATH": str(workdir), "PYTHONPATH": str(ROOT)}
        manage = [sys.executable, str(ROOT / "manage.py")]
        print(f"{n} tenant schemas, {len(CHAIN)}-revision chain (head {head}), database {name}", flush=True)

        rendered = render_range(tenancy.scripts, "postgresql", None, head)
        body = "\n".join(sql for _, statements in rendered for sql in statements)
        tenancy.engines.dispose()
        restore = stack.enter_context(fresh_copies([opts.pg_url], name))

        def fresh() -> None:
            tenancy.engines.dispose()  # no session of this process across a copy
            restore()

        fresh()
        scripts = ["BEGIN;\nSET LOCAL search_path TO " + quoted_schema(s) + ";\n" + body + "\nCOMMIT;" for s in slugs]
        rows: list[tuple[str, float, str]] = []
        floor1 = psql_floor(db_url, scripts, 1, workdir)
        fresh()
        floor2 = psql_floor(db_url, scripts, 2, workdir)
        fresh()
        rows += [("floor: psql, 1 session", floor1, ""), ("floor: psql, 2 sessions", floor2, "")]
        print(f"  floors done ({floor1:.1f} s, {floor2:.1f} s)", flush=True)

        sample = slugs[:opts.sample]
        per = []
        for slug in sample:
            seconds, _, done = measure([*manage, "upgrade-tenant", slug], env)
            if done.returncode:
                raise SystemExit(f"naive baseline failed: {done.stderr[-2000:]}")
            per.append(seconds)
        naive = statistics.mean(per) * n
        rows.append((f"naive: upgrade-tenant per tenant (extrapolated from {len(sample)})", naive, ""))
        fresh()

        # The rehearsal changes nothing: the tenants are still at base for the rows after it.
        seconds, rss, done = measure([*manage, "upgrade-all-tenants", "--quiet", "--rehearse"], env)
        if done.returncode:
            raise SystemExit(f"rehearsal failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
        rows.append(("upgrade-all-tenants --rehearse (default jobs)", seconds, f"peak RSS {rss / 2**20:.0f} MiB"))
        print(f"  rehearsal: {seconds:.1f} s", flush=True)

        for label, extra in (("upgrade-all-tenants --jobs 1", ["--jobs", "1"]),
                             ("upgrade-all-tenants (default jobs)", []),
                             ("upgrade-all-tenants --jobs 4", ["--jobs", "4"]),
                             ("upgrade-all-tenants --no-replay", ["--no-replay"])):
            seconds, rss, done = measure([*manage, "upgrade-all-tenants", "--quiet", *extra], env)
            if done.returncode:
                raise SystemExit(f"{label} failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
            rows.append((label, seconds, f"peak RSS {rss / 2**20:.0f} MiB"))
            print(f"  {label}: {seconds:.1f} s", flush=True)
            if "no-replay" not in label:
                fresh()

        noop = [measure([*manage, "upgrade-all-tenants", "--quiet"], env) for _ in range(3)]
        helps = [measure([*manage, "upgrade-all-tenants", "--help"], env)[0] for _ in range(3)]
        noop_s = statistics.median(s for s, _, _ in noop)
        help_s = statistics.median(helps)
        noop_rss = max(r for _, r, _ in noop) / 2**20
        rows.append(("no-op run (all at head), median of 3", noop_s, f"peak RSS {noop_rss:.0f} MiB"))
        rows.append(("start-up: upgrade-all-tenants --help, median 3", help_s, ""))

        if opts.via == "celery":
            rows += celery_rows(opts, manage, env, fresh, workdir)

        print(f"\n{'':<48} {'seconds':>8} {'tenants/s':>10} {'x floor1':>9} {'x floor2':>9}")
        for label, seconds, note in rows:
            print(f"{label:<48} {seconds:8.2f} {n / seconds:10.1f} {seconds / floor1:9.2f} {seconds / floor2:9.2f}  "
                  f"{note}")
        print(f"\nno-op run minus its start-up (upgrade-all-tenants --help): {noop_s - help_s:+.2f} s, "
              f"{(noop_s - help_s) / n * 1000:.3f} ms per tenant")
        local = next(seconds for label, seconds, _ in rows if label == "upgrade-all-tenants (default jobs)")
        rehearsal = next(seconds for label, seconds, _ in rows if label.startswith("upgrade-all-tenants --rehearse"))
        print(f"rehearsal / apply (default jobs): {rehearsal / local:.2f}x")
        pool = [(label, seconds) for label, seconds, _ in rows if label.startswith("upgrade-all-tenants --jobs ")]
        for label, seconds, _ in rows:
            if label.startswith("--via celery"):
                print(f"{label}: {n / seconds:.1f} tenants/s, {local / seconds:.2f}x the in-process default run, "
                      f"{pool[-1][1] / seconds:.2f}x {pool[-1][0]}")
    finally:
        stack.close()
        release(tenancy, opts.pg_url, name, workdir, keep=opts.keep)


if __name__ == "__main__":
    main()
