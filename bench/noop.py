#!/usr/bin/env python
"""Benchmark the no-op `upgrade-all-tenants` (every tenant at head) against the same command's own start-up.

    python bench/noop.py                      # N = 1000 tenants
    python bench/noop.py --tenants 3000 --profile

Creates a scratch database with N tenant schemas at the head of bench/upgrade_all.py's chain
(built with psql, the floor's SQL), then measures in the same run, median of 7 interleaved pairs
(wall and client CPU time, with no memory sampler beside them; peak RSS from one more no-op run):
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
import resource
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project's modules (and bench.upgrade_all's helpers) are imported in main()


def wall_and_cpu(args: list[str], env: dict) -> tuple[float, float]:
    """Run a command with no sampler beside it; return (wall seconds, its CPU seconds); stop on failure."""
    from bench.upgrade_support import timed

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, done = timed(args, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[1:])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def medians(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """Median wall and CPU seconds."""
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000, help="number of tenant schemas (default 1000)")
    parser.add_argument("--pg-url", default=os.environ.get("PORTAL_TEST_PG_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--repeat", type=int, default=7, help="interleaved start-up/no-op pairs (default 7)")
    parser.add_argument("--profile", action="store_true", help="also profile one no-op run with cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    opts = parser.parse_args()
    from bench.upgrade_support import measure, psql_floor, scratch_fleet
    from tenants.core.names import quoted_schema

    n = opts.tenants
    with scratch_fleet(opts.pg_url, n, "bench_noop_", keep=opts.keep) as fleet:
        db_url, workdir, chain, name = fleet.url, fleet.workdir, fleet.chain, fleet.name
        psql_floor(db_url, [f"BEGIN;\nCREATE SCHEMA {quoted_schema(s)};\nSET LOCAL search_path TO {quoted_schema(s)};"
                            f"\n{fleet.body}\nCOMMIT;" for s in fleet.slugs], 2, workdir)
        env = {**os.environ, "DATABASE_URL": db_url, "PORTAL_REVISION_DIR": str(chain),
               "PORTAL_INSTANCE_PATH": str(workdir), "PYTHONPATH": str(ROOT)}
        manage = [sys.executable, str(ROOT / "manage.py")]
        warm = measure([*manage, "upgrade-all-tenants", "--quiet"], env)[2]  # records the ledger once
        if warm.returncode:
            raise SystemExit(f"warm-up failed ({warm.returncode}): {warm.stdout[-2000:]} {warm.stderr[-2000:]}")
        # Interleaved pairs, so that load from other processes on a shared machine hits both alike;
        # client CPU time (user + sys of the process) is reported too: it hardly moves with that load.
        startups, noops = [], []
        for _ in range(opts.repeat):
            startups.append(wall_and_cpu([*manage, "upgrade-all-tenants", "--help"], env))
            noops.append(wall_and_cpu([*manage, "upgrade-all-tenants", "--quiet"], env))
        (startup, startup_cpu), (noop, noop_cpu) = medians(startups), medians(noops)
        _, rss, sampled = measure([*manage, "upgrade-all-tenants", "--quiet"], env)  # its own run: sampling costs CPU
        if sampled.returncode:
            raise SystemExit(f"the sampled no-op failed ({sampled.returncode}): {sampled.stderr[-2000:]}")
        print(f"{n} tenants at head, {fleet.revisions}-revision chain, database {name}; median of {opts.repeat}")
        print(f"upgrade-all-tenants --help (its start-up): {startup:.2f} s wall, {startup_cpu:.2f} s CPU")
        print(f"no-op upgrade-all-tenants:                 {noop:.2f} s wall, {noop_cpu:.2f} s CPU "
              f"(peak RSS {rss / 2**20:.0f} MiB)")
        print(f"no-op minus its start-up: {noop - startup:+.2f} s wall ({(noop - startup) / n * 1000:.3f} ms per "
              f"tenant), {noop_cpu - startup_cpu:+.2f} s CPU")
        if opts.profile:
            out = ROOT / "bench" / f"noop-{n}.prof"
            done = measure([sys.executable, "-m", "cProfile", "-o", str(out), str(ROOT / "manage.py"),
                            "upgrade-all-tenants", "--quiet"], env)[2]
            if done.returncode:
                raise SystemExit(f"profiled run failed: {done.stderr[-2000:]}")
            pstats.Stats(str(out)).sort_stats("cumulative").print_stats(40)

if __name__ == "__main__":
    main()
