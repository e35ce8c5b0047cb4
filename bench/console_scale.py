"""The console at 2,000 tenants against the same console at 3, in one run (`console_load.py --scale`).

    python bench/console_load.py --scale [--large 2000] [--small 3] [--products 50] [--seconds 5] [--rounds 3]

Builds two throwaway PostgreSQL databases with the same code: the control plane, a superuser,
and N tenant schemas, each at head with products, registry rows, ledger rows and dashboard
stats. Tenants are made directly, cheaply: the chain's SQL is rendered once (the same offline
rendering `upgrade-all-tenants --sql` prints) and replayed into each new schema in batches,
and the control-plane rows go in with one INSERT per table (account_key set by hand: its
default is Python-side only). Both consoles run under gunicorn (2 gthread workers); they take
turns of a second on each page, so the shared machine's load falls on both alike. For each
page it prints the median latency at N and at 3, and their ratio against the target (at most
1.3x). The machine is shared: treat figures as indicative. `--keep` leaves both databases in
place (their URLs are printed) for profiling the same worlds again; drop them by hand after.
"""

import random
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg2

from tenants.core.clock import utcnow
from tenants.core.control_schema import new_account_key
from tenants.core.names import quoted_schema
from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control
from tenants.migrate.replay import render_range

TARGET = 1.3
BATCH = 100  # tenant schemas per round trip
TURN = 1.0  # seconds one world is driven before the other takes its turn
PAGES = ("dashboard", "switcher search", "Tenants list", "product list")


def _tenant_sql(slug: str, statements: list[str], products: int) -> str:
    """Return one tenant's schema, chain and products as one script (names are the bench's own, checked)."""
    schema = quoted_schema(slug)
    lines = [f"CREATE SCHEMA {schema};", f"SET search_path TO {schema};", *statements,
             "INSERT INTO products (name, sku, price, stock, active, created_at) "
             f"SELECT 'Product ' || g, 'SKU-' || g, g, g, true, now() FROM generate_series(1, {int(products)}) g;"]
    return "\n".join(lines)


def build_tenants(url: str, tmp: Path, count: int, products: int) -> list[str]:
    """Create the control plane and `count` tenants at head, directly; return their slugs."""
    tenancy = Tenancy(TenantSettings(control_url=url, tenant_dir=tmp / "tenants"))
    try:
        ensure_control(tenancy)
        head = tenancy.head()
        statements = [s for _, batch in render_range(tenancy.scripts, "postgresql", None, head) for s in batch]
    finally:
        tenancy.close()
    slugs = [f"t{i:05d}" for i in range(count)]
    now = utcnow()
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            for i in range(0, count, BATCH):
                cur.execute("\n".join(_tenant_sql(slug, statements, products) for slug in slugs[i:i + BATCH]))
                conn.commit()  # one transaction per batch: thousands of new tables exhaust the lock table
            cur.execute("SET search_path TO public")
            keys = {slug: new_account_key() for slug in slugs}
            cur.executemany(
                "INSERT INTO tenants (slug, display_name, status, created_at, updated_at, account_key) "
                "VALUES (%s, %s, 'active', %s, %s, %s)",
                [(slug, f"Tenant {slug.upper()}", now, now, keys[slug]) for slug in slugs])
            cur.executemany("INSERT INTO tenant_versions (tenant_slug, revision, updated_at) VALUES (%s, %s, %s)",
                            [(slug, head, now) for slug in slugs])
            cur.executemany(
                "INSERT INTO tenant_stats (tenant_key, table_name, tenant_slug, row_count, taken_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(keys[slug], table, slug, products if table == "products" else 0, now)
                 for slug in slugs for table in ("products", "roles", "users", "users_roles")])
        conn.autocommit = True
        with conn.cursor() as cur:  # planner statistics, as autovacuum would soon have them
            cur.execute("ANALYZE tenants; ANALYZE tenant_versions; ANALYZE tenant_stats")
    finally:
        conn.close()
    return slugs


def page_paths(slugs: list[str], rng: random.Random) -> dict[str, list[str]]:
    """Return the paths asked for each page: random tenants, searches typed as people type them."""
    sample = rng.sample(slugs, min(len(slugs), 50))
    return {
        "dashboard": ["/admin/"],
        "switcher search": [f"/admin/switch/search/?query={q}" for s in sample for q in (s, s[:3], "")],
        "Tenants list": ["/admin/tenants/"],
        "product list": [f"/t/{s}/admin/product/" for s in sample],
    }


def run_scale(opts: Any, make_database: Any, drop_database: Any, serve: Any, stop: Any, sign_in: Any,
              client: Any) -> None:
    """Build both worlds, serve both consoles, alternate rounds over every page, print the ratios."""
    from portal.staff import create_staff

    worlds = {"small": opts.small, "large": opts.large}
    urls, procs, ports, cookies, paths = {}, [], {}, {}, {}
    rng = random.Random(12)
    try:
        for which, count in worlds.items():
            urls[which], tmp = make_database()
            started = time.perf_counter()
            slugs = build_tenants(urls[which], tmp, count, opts.products)
            tenancy = Tenancy(TenantSettings(control_url=urls[which], tenant_dir=tmp / "tenants"))
            create_staff(tenancy.control_engine, "bench@example.com", opts.password, superuser=True)
            tenancy.close()
            print(f"built {count} tenants x {opts.products} products in {time.perf_counter() - started:.1f} s")
            proc, ports[which] = serve("portal:create_app()", {
                "DATABASE_URL": urls[which], "PORTAL_INSTANCE_PATH": str(tmp), "SECRET_KEY": secrets.token_hex(32)})
            procs.append(proc)
            cookies[which] = sign_in(ports[which], True)
            paths[which] = page_paths(slugs, rng)
        latencies: dict[tuple[str, str], list[float]] = {(w, p): [] for w in worlds for p in PAGES}
        # The machine is shared: load moves within seconds. Both worlds take turns of TURN seconds
        # on one page (who goes first alternates), so a burst of load falls on both alike.
        turns = max(2, round(opts.seconds * opts.rounds / TURN))
        for page in PAGES:
            for which in worlds:
                client((ports[which], cookies[which], paths[which][page], min(1.0, opts.seconds), 99))  # warm-up
            for turn in range(turns):
                for which in list(worlds) if turn % 2 == 0 else list(reversed(worlds)):
                    found, errors = client((ports[which], cookies[which], paths[which][page], TURN, turn))
                    if errors or not found:
                        raise RuntimeError(f"{page} at {worlds[which]} tenants: {errors} requests failed")
                    latencies[(which, page)].extend(found)
        print(f"\n{'page':18s}{f'p50 at {opts.small}':>14s}{f'p50 at {opts.large}':>16s}{'ratio':>8s}  target")
        worst = 0.0
        for page in PAGES:
            small = statistics.median(latencies[("small", page)]) * 1000
            large = statistics.median(latencies[("large", page)]) * 1000
            worst = max(worst, large / small)
            print(f"{page:18s}{small:11.1f} ms{large:13.1f} ms{large / small:7.2f}x  <= {TARGET}x "
                  f"({'ok' if large / small <= TARGET else 'MISSED'}; "
                  f"{len(latencies[('small', page)])}/{len(latencies[('large', page)])} requests)")
        print(f"\nworst ratio x{worst:.2f}; one keep-alive client per page, {opts.seconds:g} s x {opts.rounds} "
              f"rounds per page and world in alternating turns of {TURN:g} s, gunicorn 2 gthread workers x 4 threads; "
              "shared machine: indicative")
    finally:
        for proc in procs:
            stop(proc)
        for which, url in urls.items():
            if opts.keep:
                print(f"kept the {worlds[which]}-tenant world: DATABASE_URL={url}")
            else:
                drop_database(url)

