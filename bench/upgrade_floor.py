#!/usr/bin/env python
"""The fleet run against the psql floor at equal concurrency, median of interleaved rounds.

    python bench/upgrade_floor.py --tenants 1000 [--rounds 3] [--baseline-tree DIR]

Builds the scratch database of bench/upgrade_all.py (N tenant schemas, its 10-revision chain) and
runs, in each round and in this order: the one-session psql floor, `upgrade-all-tenants --jobs 1`,
the two-session floor, `upgrade-all-tenants --jobs 2`; every row from a byte-identical copy of
the database (bench.upgrade_support.fresh_copies). With
`--baseline-tree DIR` (another checkout of the project, e.g. `git archive <commit> | tar -x -C DIR`), each
round also runs that tree's `--jobs 1` and `--jobs 2`, so a change is measured against the code
before it under the same load. Prints the median of each row, its ratio to the floor's median,
and its ratio to the floor of each round (the machine's speed drifts between rounds: the
spread shows by how much).
"""

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project's modules are imported inside main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000, help="number of tenant schemas (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--baseline-tree", type=Path, help="another checkout whose manage.py runs as the baseline")
    parser.add_argument("--pg-url", default=os.environ.get("PORTAL_TEST_PG_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    opts = parser.parse_args()
    from bench.upgrade_support import fresh_copies, psql_floor, reset, scratch_fleet, stolen, timed
    from tenants.core.names import quoted_schema

    n = opts.tenants
    with scratch_fleet(opts.pg_url, n, "bench_floor_") as scratch, ExitStack() as stack:
        db_url, workdir, chain, slugs = scratch.url, scratch.workdir, scratch.chain, scratch.slugs
        scripts = ["BEGIN;\nSET LOCAL search_path TO " + quoted_schema(s) + ";\n" + scratch.body + "\nCOMMIT;"
                   for s in slugs]
        trees = [("", ROOT)] + ([(" (baseline tree)", opts.baseline_tree.resolve())] if opts.baseline_tree else [])

        def fleet(tree: Path, jobs: int) -> float:
            env = {**os.environ, "DATABASE_URL": db_url, "PORTAL_REVISION_DIR": str(chain),
                   "PORTAL_INSTANCE_PATH": str(workdir), "PYTHONPATH": str(tree)}
            seconds, done = timed([sys.executable, str(tree / "manage.py"), "upgrade-all-tenants", "--quiet",
                                   "--jobs", str(jobs)], env)  # as the floor is timed: no sampler beside it
            if done.returncode:
                raise SystemExit(f"--jobs {jobs} in {tree} failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
            return seconds

        reset(db_url, slugs)  # the tenants' empty schemas; every row starts from a copy of this (fresh_copies)
        restore = stack.enter_context(fresh_copies([opts.pg_url], scratch.name))
        times: dict[str, list[float]] = {}
        steal: dict[str, list[float]] = {}

        def row(label: str, run: Callable[..., float], *args: object) -> None:
            restore()
            before = stolen()
            times.setdefault(label, []).append(run(*args))
            steal.setdefault(label, []).append(stolen() - before)

        print(f"{n} tenant schemas, {scratch.revisions}-revision chain, database {scratch.name}, "
              f"{opts.rounds} rounds", flush=True)
        for round_no in range(opts.rounds):
            for jobs in (1, 2):
                row(f"floor {jobs}", psql_floor, db_url, scripts, jobs, workdir)
                for label, tree in trees:
                    row(f"--jobs {jobs}{label}", fleet, tree, jobs)
            print(f"  round {round_no + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s (steal {steal[k][-1]:.1f})"
                                                       for k, v in times.items()), flush=True)
        med = {label: statistics.median(values) for label, values in times.items()}
        print(f"\n{'median of ' + str(opts.rounds):<32} {'seconds':>8} {'ms/tenant':>10} {'x floor':>8} {'steal s':>8}"
              f"  x floor, round by round")
        for label, seconds in med.items():
            floor = f"floor {1 if 'jobs 1' in label or label == 'floor 1' else 2}"
            rounds = " ".join(f"{mine / theirs:.3f}" for mine, theirs in zip(times[label], times[floor], strict=True))
            print(f"{label:<32} {seconds:8.2f} {seconds / n * 1000:10.2f} {seconds / med[floor]:8.3f} "
                  f"{statistics.median(steal[label]):8.2f}  {rounds}")
        print("x floor: the row's median over the floor's median; round by round: over the floor of its own round\n"
              "steal: CPU seconds the hypervisor took from this machine during the row (another guest's load)")


if __name__ == "__main__":
    main()
