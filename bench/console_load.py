"""Load on the console's product list: 100 tenants vs a single-tenant Flask-Admin app, same run.

    python bench/console_load.py [--tenants 100] [--products 50] [--seconds 15] [--clients 8] [--rounds 2]
    python bench/console_load.py --scale [--large 2000] [--small 3] [--keep]   (see bench/console_scale.py)

Builds a throwaway PostgreSQL database (PORTAL_BENCH_PG_URL, default the local trust login)
with the control plane and N tenants (one schema each), serves
- the console (portal.create_app) and
- bench/baseline_app.py (plain Flask-Admin, one schema, same Product view)
each with gunicorn (2 gthread workers), and drives the product list view with concurrent
keep-alive clients: the console across all tenants at random, the baseline on its one
tenant. Rounds alternate between the two to share out machine noise. Prints requests/s and
p50/p99 latency and the ratios against the target (at most 15% less throughput and 15% more
p99). Everything it starts is stopped, and the database dropped, at the end.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import psycopg2
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portal.models import Product  # noqa: E402  (the script runs from anywhere)
from portal.permissions import Grant  # noqa: E402
from portal.staff import create_staff  # noqa: E402
from tenants.core.binding import tenant_session  # noqa: E402
from tenants.core.settings import TenantSettings  # noqa: E402
from tenants.core.tenancy import Tenancy  # noqa: E402
from tenants.fleet.create import create_tenant  # noqa: E402
from tenants.migrate.control import ensure_control  # noqa: E402

PG_ADMIN_URL = os.environ.get("PORTAL_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "bench password 1"
TARGET = 0.15


def _admin_sql(sql: str) -> None:
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def scratch_database() -> tuple[str, Path]:
    """Create an empty database of the bench's own; return its URL and a scratch folder."""
    name = f"tp_bench_{uuid.uuid4().hex[:10]}"
    _admin_sql(f'CREATE DATABASE "{name}"')  # a name made here, not user input
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False), \
        Path(os.environ.get("TMPDIR", "/tmp")) / name


def drop_database(url: str) -> None:
    """Drop a database scratch_database made."""
    _admin_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def build_world(url: str, tmp: Path, tenants: int, products: int) -> list[str]:
    """Create the control plane, the bench staff member and the tenants with products."""
    tenancy = Tenancy(TenantSettings(control_url=url, tenant_dir=tmp / "tenants"))
    ensure_control(tenancy)
    every_right = Grant(None, "products", True, True, True, True)  # as in the baseline: same buttons and forms
    create_staff(tenancy.control_engine, "bench@example.com", PASSWORD, grants=(every_right,))
    slugs = [f"bench_{i:03d}" for i in range(tenants)]
    for slug in slugs:
        create_tenant(tenancy, slug)
        with tenant_session(tenancy.storage(slug)) as session:
            session.add_all([Product(name=f"Product {j} of {slug}", sku=f"{slug}-{j}", price=Decimal(j), stock=j)
                             for j in range(products)])
            session.commit()
    tenancy.close()
    return slugs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(target: str, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """Start gunicorn on a free port of 127.0.0.1 and wait until it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "-b", f"127.0.0.1:{port}", "-w", "2",
         "-k", "gthread", "--threads", "4", "--log-level", "warning", target],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"{target} did not start")


def stop(proc: subprocess.Popen) -> None:
    """Stop one gunicorn (its whole process group: master and workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _cookie(response: http.client.HTTPResponse, jar: dict[str, str]) -> None:
    for header in response.headers.get_all("Set-Cookie") or []:
        name, value = header.split(";", 1)[0].split("=", 1)
        jar[name] = value


def sign_in(port: int, console: bool) -> str:
    """Sign in once and return the Cookie header every client sends."""
    jar: dict[str, str] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    if console:
        conn.request("GET", "/login")
        page = conn.getresponse()
        _cookie(page, jar)
        token = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page.read().decode()).group(1)
        body = urlencode({"email": "bench@example.com", "password": PASSWORD, "csrf_token": token})
        conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded",
                                              "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())})
    else:
        conn.request("GET", "/bench-login")
    response = conn.getresponse()
    response.read()
    assert response.status == 302, response.status
    _cookie(response, jar)
    conn.close()
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def _client(args: tuple[int, str, list[str], float, int]) -> tuple[list[float], int]:
    port, cookie, paths, seconds, seed = args
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, errors = [], 0
    end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        conn.request("GET", rng.choice(paths), headers={"Cookie": cookie})
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            latencies.append(time.perf_counter() - now)
        else:
            errors += 1
    conn.close()
    return latencies, errors


def server_cpu_seconds(group: int) -> float:
    """Return the CPU time (user + system) used so far by every process of a process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def drive(port: int, cookie: str, paths: list[str], seconds: float, clients: int, group: int) -> dict[str, float]:
    """Run `clients` keep-alive clients (processes) for `seconds`; return req/s, p50, p99 (ms), server CPU."""
    _client((port, cookie, paths, min(2.0, seconds), 0))  # warm-up: pools, caches, templates
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        cpu_before = server_cpu_seconds(group)
        parts = pool.map(_client, [(port, cookie, paths, seconds, i + 1) for i in range(clients)])
        cpu = server_cpu_seconds(group) - cpu_before
    latencies = sorted(x for lat, _ in parts for x in lat)
    errors = sum(e for _, e in parts)
    if errors or not latencies:
        raise RuntimeError(f"{errors} requests failed")
    return {"rps": len(latencies) / seconds, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "requests": len(latencies),
            "cpu_ms": cpu * 1000 / len(latencies)}


def main() -> None:
    """Build, serve, measure, report, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scale", action="store_true",
                        help="Instead: dashboard, switcher search, Tenants list and product list at --large vs --small "
                             "tenants (bench/console_scale.py).")
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--small", type=int, default=3)
    parser.add_argument("--keep", action="store_true",
                        help="With --scale: keep both databases (URLs printed) to profile the same worlds again.")
    opts = parser.parse_args()
    if opts.scale:
        from bench.console_scale import run_scale

        opts.password = PASSWORD
        run_scale(opts, scratch_database, drop_database, serve, stop, sign_in, _client)
        return

    name = f"tp_bench_{uuid.uuid4().hex[:10]}"
    _admin_sql(f'CREATE DATABASE "{name}"')  # a name made here, not user input
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / name
    procs: list[subprocess.Popen] = []
    try:
        started = time.perf_counter()
        slugs = build_world(url, tmp, opts.tenants, opts.products)
        print(f"built {len(slugs)} tenants x {opts.products} products in {time.perf_counter() - started:.0f} s")
        env = {"DATABASE_URL": url, "PORTAL_INSTANCE_PATH": str(tmp), "SECRET_KEY": secrets.token_hex(32),
               "BENCH_TENANT_URL": url, "BENCH_TENANT_SCHEMA": f"tenant_{slugs[0]}"}
        console, console_port = serve("portal:create_app()", env)
        procs.append(console)
        baseline, baseline_port = serve("bench.baseline_app:create()", env)
        procs.append(baseline)
        runs: dict[str, list[dict[str, float]]] = {"console": [], "baseline": []}
        cookies = {"console": sign_in(console_port, True), "baseline": sign_in(baseline_port, False)}
        paths = {"console": [f"/t/{s}/admin/product/" for s in slugs], "baseline": ["/admin/product/"]}
        ports = {"console": console_port, "baseline": baseline_port}
        groups = {"console": console.pid, "baseline": baseline.pid}
        for i in range(opts.rounds):
            for which in ("baseline", "console") if i % 2 == 0 else ("console", "baseline"):
                result = drive(ports[which], cookies[which], paths[which], opts.seconds, opts.clients,
                               groups[which])
                runs[which].append(result)
                print(f"round {i + 1} {which:8s} {result['rps']:7.1f} req/s  p50 {result['p50']:6.1f} ms  "
                      f"p99 {result['p99']:6.1f} ms  server CPU {result['cpu_ms']:5.1f} ms/req  "
                      f"({result['requests']} requests)")
        summary = {which: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "cpu_ms")}
                   for which, rs in runs.items()}
        throughput = summary["console"]["rps"] / summary["baseline"]["rps"]
        p99 = summary["console"]["p99"] / summary["baseline"]["p99"]
        p50 = summary["console"]["p50"] / summary["baseline"]["p50"]
        cpu = summary["console"]["cpu_ms"] / summary["baseline"]["cpu_ms"]
        print(f"\n{'':10s}{'req/s':>9s}{'p50 ms':>9s}{'p99 ms':>9s}{'CPU ms/req':>12s}")
        for which in ("baseline", "console"):
            s = summary[which]
            print(f"{which:10s}{s['rps']:9.1f}{s['p50']:9.1f}{s['p99']:9.1f}{s['cpu_ms']:12.1f}")
        print(f"\nconsole/baseline: throughput x{throughput:.2f} (target >= {1 - TARGET:.2f}), "
              f"p50 x{p50:.2f}, p99 x{p99:.2f} (target <= {1 + TARGET:.2f}), server CPU per request x{cpu:.2f}")
        print(f"{len(slugs)} tenants, {opts.clients} clients, {opts.seconds:.0f} s x {opts.rounds} rounds each, "
              "gunicorn 2 gthread workers x 4 threads")
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / "console_load.json").write_text(json.dumps({"options": vars(opts), "runs": runs, "summary": summary,
                                                           "throughput_ratio": throughput, "p99_ratio": p99}, indent=2))
    finally:
        for proc in procs:
            stop(proc)
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
