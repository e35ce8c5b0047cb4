#!/usr/bin/env python
"""Benchmark the no-op `upgrade-all-tenants` (every tenant at head) against the same command's own start-up.

    python bench/noop.py                      # N = 1000 tenants
    python bench/noop.py --tenants 3000 --profile

Creates a scratch database with N tenant schemas at the head of bench/upgrade_all.py's chain
(built with psql, the floor's SQL), then measures, median of 3, in the same run:
  start-up   `manage.py upgrade-all-tenants --help`: the command's own imports and click, no work;
  no-op      `manage.py upgrade-all-tenants --quiet` with every tenant at head (after one warm-up
             run that records the ledger);
and prints the no-op's overhead over its start-up, per tenant too. `--profile` writes a cProfile
of one no-op run (bench/noop-N.prof) and prints its top functions by cumulative time.
The scratch database is dropped at the end unless --keep.
"""

import argparse
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project's modules (and bench.upgrade_all's helpers) are imported in main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000, help="number of tenant schemas (default 1000)")
    parser.add_argument("--pg-url", default=os.environ.get("PORTAL_TEST_PG_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--profile", action="store_true", help="also profile one no-op run with cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    opts = parser.parse_args()
    from bench.upgrade_all import admin, measure, psql_floor, write_chain
    from tenants.core.names import quote_ident, quoted_schema
    from tenants.core.settings import TenantSettings
    from tenants.core.tenancy import Tenancy
    from tenants.migrate.control import ensure_control
    from tenants.migrate.replay import render_range

    n = opts.tenants
    name = f"bench_{uuid.uuid4().hex[:10]}"
    db_url = make_url(opts.pg_url).set(database=name).render_as_string(hide_password=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench_noop_"))
    admin(opts.pg_url, "CREATE DATABASE " + quote_ident(name))
    tenancy = None
    try:
        chain = write_chain(workdir)
        tenancy = Tenancy(TenantSettings(control_url=db_url, tenant_dir=workdir / "tenants", revision_dir=chain))
        ensure_control(tenancy)
        slugs = [f"t{i:05d}" for i in range(n)]
        for slug in slugs:
            tenancy.registry.add(slug, slug, None)
            tenancy.registry.set_status(slug, "active")
        rendered = render_range(tenancy.scripts, "postgresql", None, tenancy.head())
        body = "\n".join(sql for _, statements in rendered for sql in statements)
        psql_floor(db_url, [f"BEGIN;\nCREATE SCHEMA {quoted_schema(s)};\nSET LOCAL search_path TO {quoted_schema(s)};"
                            f"\n{body}\nCOMMIT;" for s in slugs], 2, workdir)
        env = {**os.environ, "DATABASE_URL": db_url, "PORTAL_REVISION_DIR": str(chain),
               "PORTAL_INSTANCE_PATH": str(workdir), "PYTHONPATH": str(ROOT)}
        manage = [sys.executable, str(ROOT / "manage.py")]
        warm = measure([*manage, "upgrade-all-tenants", "--quiet"], env)[2]  # records the ledger once
        if warm.returncode:
            raise SystemExit(f"warm-up failed ({warm.returncode}): {warm.stdout[-2000:]} {warm.stderr[-2000:]}")
        startup = statistics.median(measure([*manage, "upgrade-all-tenants", "--help"], env)[0] for _ in range(3))
        runs = [measure([*manage, "upgrade-all-tenants", "--quiet"], env) for _ in range(3)]
        if any(done.returncode for _, _, done in runs):
            raise SystemExit("a no-op run failed: " + next(d.stderr for _, _, d in runs if d.returncode)[-2000:])
        noop = statistics.median(seconds for seconds, _, _ in runs)
        rss = max(peak for _, peak, _ in runs) / 2**20
        print(f"{n} tenants at head, {len(rendered)}-revision chain, database {name}")
        print(f"upgrade-all-tenants --help (its start-up), median of 3: {startup:.2f} s")
        print(f"no-op upgrade-all-tenants, median of 3:                 {noop:.2f} s (peak RSS {rss:.0f} MiB)")
        print(f"no-op minus its start-up: {noop - startup:+.2f} s = {(noop - startup) / n * 1000:.3f} ms per tenant")
        if opts.profile:
            out = ROOT / "bench" / f"noop-{n}.prof"
            done = measure([sys.executable, "-m", "cProfile", "-o", str(out), str(ROOT / "manage.py"),
                            "upgrade-all-tenants", "--quiet"], env)[2]
            if done.returncode:
                raise SystemExit(f"profiled run failed: {done.stderr[-2000:]}")
            pstats.Stats(str(out)).sort_stats("cumulative").print_stats(40)
    finally:
        if tenancy is not None:
            tenancy.close()
        if not opts.keep:
            admin(opts.pg_url, "DROP DATABASE IF EXISTS " + quote_ident(name) + " WITH (FORCE)")
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
