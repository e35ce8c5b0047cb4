#!/usr/bin/env python
"""Benchmark tenant creation: its cost against the chain's length, and bulk creation against psql.

    python bench/create_tenants.py                  # bulk of N = 200 (about a minute here)
    python bench/create_tenants.py --bulk 1000      # the full figure

In the same run, on scratch databases and folders it drops at the end:
  chain length  `create_tenant` (the library call behind `manage.py create-tenant`, in one process,
                after a first creation that builds the template) median of --repeat creations, with
                the project's chain and two 60-revision synthetic chains (the project's 3 revisions
                plus 57): "growing" adds tables, columns and indexes, changes defaults and drops
                columns, so its final schema is about 3x the project's; "churning" adds, indexes,
                re-defaults, renames and drops columns of one table, so its history is as long but its
                final schema is the project's plus 4 columns (chain LENGTH apart from final SIZE).
                On SQLite files and PostgreSQL schemas, interleaved, next to the old path (Alembic
                replaying the chain per tenant) and the bare floor (PostgreSQL: the head's final DDL,
                the same dump the portal runs, through psycopg2 in one transaction; SQLite: a file
                copy); on PostgreSQL also the previous fast path (the rendered chain's history in one
                round trip) and its floor;
  bulk          `manage.py create-tenants --from FILE` for N tenants on PostgreSQL (default jobs, and
                --jobs 2), next to the floor: psql running the same DDL (the head's dump, renamed per
                tenant, one transaction per tenant) in one session and in two.
Figures are indicative: the machine is shared.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project's modules are imported inside the functions below

from bench.upgrade_support import admin, drop_database  # noqa: E402 (needs the path above)

SYNTHETIC = 57  # revisions added to the project's 3


def growing_body(index: int) -> str:
    """Return the upgrade body of "growing" revision `index` (0-based): a cycle of changes that grow the schema."""
    table = f"extra_{index // 6:02d}"
    step = index % 6
    if step == 0:
        return (f'op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True), '
                'sa.Column("name", sa.String(80), nullable=False), '
                'sa.Column("created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP")))')
    if step == 1:
        return (f'with op.batch_alter_table("{table}") as b:\n'
                '        b.add_column(sa.Column("code", sa.String(20)))\n'
                '        b.add_column(sa.Column("score", sa.Integer, nullable=False, server_default="0"))')
    if step == 2:
        return f'op.create_index("ix_{table}_code", "{table}", ["code"])'
    if step == 3:
        return (f'with op.batch_alter_table("{table}") as b:\n'
                '        b.alter_column("score", server_default="1")')
    if step == 4:
        return (f'with op.batch_alter_table("products") as b:\n'
                f'        b.add_column(sa.Column("note_{index:02d}", sa.String(40)))')
    return (f'with op.batch_alter_table("products") as b:\n'
            f'        b.drop_column("note_{index - 1:02d}")')


def churning_body(index: int) -> str:
    """Return the upgrade body of "churning" revision `index` (0-based): a column of products added, indexed,
    re-defaulted, unindexed, renamed and dropped; every third one stays, as does the unfinished last cycle."""
    column, step = f"c{index // 6:02d}", index % 6
    batch = 'with op.batch_alter_table("products") as b:\n        '
    if step == 0:
        return batch + f'b.add_column(sa.Column("{column}", sa.String(40)))'
    if step == 1:
        return f'op.create_index("ix_products_{column}", "products", ["{column}"])'
    if step == 2:
        return batch + f'b.alter_column("{column}", server_default="x")'
    if step == 3:
        return f'op.drop_index("ix_products_{column}", "products")'
    if step == 4:
        return batch + f'b.alter_column("{column}", new_column_name="{column}_r")'
    if index // 6 % 3 == 2:
        return batch + f'b.alter_column("{column}_r", server_default=None)'  # kept
    return batch + f'b.drop_column("{column}_r")'


def write_synthetic_chain(directory: Path, name: str, body) -> Path:  # type: ignore[no-untyped-def]
    """Copy the project's chain and add SYNTHETIC revisions on top of its head, `body(index)` each."""
    chain = directory / name
    shutil.copytree(ROOT / "migrations", chain, ignore=shutil.ignore_patterns("__pycache__", "control"))
    down = "0003"
    for index in range(SYNTHETIC):
        rev = f"s{index:03d}"
        (chain / "versions" / f"{rev}.py").write_text(
            f'"""synthetic {rev}"""\nfrom alembic import op\nimport sqlalchemy as sa\n\nrevision = {rev!r}\n'
            f"down_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n    {body(index)}\n\n\ndef downgrade():\n    pass\n")
        down = rev
    return chain


def scratch_database(pg_url: str) -> tuple[str, str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    from tenants.core.names import quote_ident

    admin(pg_url, "CREATE DATABASE " + quote_ident(name))
    return name, make_url(pg_url).set(database=name).render_as_string(hide_password=False)


class Creator:
    """One process's way to create tenants on one chain: the fast path, the previous fast path, the old path,
    or the bare floors."""

    def __init__(self, control_url: str, folder: Path, chain: Path) -> None:
        from tenants.core.settings import TenantSettings
        from tenants.core.tenancy import Tenancy
        from tenants.migrate.control import ensure_control

        self.control_url, self.folder = control_url, folder
        self.tenancy = Tenancy(TenantSettings(control_url=control_url, tenant_dir=folder, revision_dir=chain))
        ensure_control(self.tenancy)
        self.tenancy.scripts.get_current_head()  # a process has its chain loaded before it creates tenants
        self.count = 0
        self.floor_conn = None
        self.scripts: dict[str, str] = {}

    def slug(self) -> str:
        self.count += 1
        return f"t{self.count:04d}"

    def fast(self) -> float:
        """Seconds to create one tenant the way create-tenant does (the first one builds the template)."""
        from tenants.fleet.create import create_tenant

        started = time.perf_counter()
        create_tenant(self.tenancy, self.slug())
        return time.perf_counter() - started

    def rendered(self) -> float:
        """Seconds to create one tenant with the rendered chain's history in one round trip (before dumps)."""
        from dataclasses import replace

        from tenants.fleet.create import creation_template
        from tenants.migrate.lifecycle import TenantSpec, provision_tenant

        template = replace(creation_template(self.tenancy, "postgresql"), folder=None)  # no dump: the chain
        started = time.perf_counter()
        provision_tenant(self.tenancy, TenantSpec(self.slug()), template)
        return time.perf_counter() - started

    def old(self) -> float:
        """Seconds to create one tenant with Alembic replaying the chain (the path before templates)."""
        from tenants.migrate.lifecycle import TenantSpec, provision_tenant

        started = time.perf_counter()
        provision_tenant(self.tenancy, TenantSpec(self.slug()), None)
        return time.perf_counter() - started

    def floor(self) -> float:
        """Seconds of the bare work a tenant at head needs, without the portal around it.

        PostgreSQL: the head's final DDL and rows (the cached dump the portal runs, which creates the
        schema) in one transaction on an open psycopg2 connection. SQLite: copy the template file and
        read its alembic_version.
        """
        return self._floor("dump")

    def chain_floor(self) -> float:
        """PostgreSQL: seconds of CREATE SCHEMA and the rendered chain's history in one transaction (psycopg2)."""
        return self._floor("chain")

    def _floor(self, kind: str) -> float:
        import json
        import sqlite3

        from tenants.core.names import quoted_schema

        templates = self.folder / ".templates"
        slug = self.slug()
        if self.control_url.startswith("sqlite"):
            [template] = templates.glob("*.sqlite3")
            target = self.folder / f"floor_{slug}.sqlite3"
            started = time.perf_counter()
            shutil.copyfile(template, target)
            with sqlite3.connect(target) as conn:
                conn.execute("SELECT version_num FROM alembic_version").fetchone()
            conn.close()
            return time.perf_counter() - started
        if self.floor_conn is None:
            [cached] = templates.glob("*.postgresql.json")
            self.scripts["chain"] = "\n".join(sql if sql.endswith(";") else sql + ";"
                                              for _, statements in json.loads(cached.read_text()) for sql in statements)
            [dump] = templates.glob("*.dump.json")
            self.scripts["dump"] = json.loads(dump.read_text())["parts"]
            self.floor_conn = psycopg2.connect(make_url(self.control_url).render_as_string(hide_password=False))
        schema = quoted_schema(f"floor_{slug}")
        script = (schema.join(self.scripts["dump"]) if kind == "dump"
                  else f"CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema};\n{self.scripts['chain']}")
        started = time.perf_counter()
        with self.floor_conn, self.floor_conn.cursor() as cur:
            cur.execute(script)
        return time.perf_counter() - started

    def close(self) -> None:
        if self.floor_conn is not None:
            self.floor_conn.close()
        self.tenancy.close()


def chain_rows(pg_url: str, workdir: Path, repeat: int) -> list[str]:
    """Create tenants on the three chains in turn (A/B/C/A/B/C: the machine's noise hits them alike)."""
    chains = {"project (3 revisions)": ROOT / "migrations",
              "growing (60 revisions)": write_synthetic_chain(workdir, "growing60", growing_body),
              "churning (60 revisions)": write_synthetic_chain(workdir, "churning60", churning_body)}
    lines = [f"{'create-tenant, median of ' + str(repeat):<26} {'dialect':<10} {'fast ms':>8} {'first ms':>9} "
             f"{'floor ms':>9} {'chain ms':>9} {'chain floor':>11} {'old ms':>8}"]
    ratios = []
    for dialect in ("sqlite", "postgresql"):
        ways = ("fast", "floor", "old") if dialect == "sqlite" else ("fast", "floor", "rendered", "chain_floor", "old")
        creators, databases = {}, []
        try:
            for label, chain in chains.items():
                folder = workdir / f"{dialect}_{chain.name}"
                folder.mkdir(parents=True)
                if dialect == "sqlite":
                    control = f"sqlite:///{folder / 'portal.sqlite3'}"
                else:
                    name, control = scratch_database(pg_url)
                    databases.append(name)
                creators[label] = Creator(control, folder / "tenants", chain)
            first = {label: creator.fast() for label, creator in creators.items()}
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(repeat):
                for way in ways:
                    for label, creator in creators.items():
                        times.setdefault((way, label), []).append(getattr(creator, way)())
        finally:
            for creator in creators.values():
                creator.close()
            for name in databases:
                drop_database(pg_url, name)
        med = {key: statistics.median(values) * 1000 for key, values in times.items()}
        for label in chains:
            cells = [f"{med[way, label]:{width}.1f}" if (way, label) in med else f"{'-':>{width}}"
                     for way, width in (("fast", 8), ("floor", 9), ("rendered", 9), ("chain_floor", 11), ("old", 8))]
            cells.insert(1, f"{first[label] * 1000:9.1f}")
            lines.append(f"{label:<26} {dialect:<10} " + " ".join(cells))
        short, *longs = chains
        for long in longs:
            names = {"floor": "floor", "rendered": "chain", "chain_floor": "chain floor", "old": "old path"}
            parts = [f"{names[way]} {med[way, long] / med[way, short]:.2f}x" for way in ways if way != "fast"]
            ratios.append(f"{dialect}, {long.split()[0]} / project: fast {med['fast', long] / med['fast', short]:.2f}x "
                          f"(target <= 1.2x); " + "; ".join(parts) + f"; fast minus floor "
                          f"{med['fast', short] - med['floor', short]:.1f} ms and "
                          f"{med['fast', long] - med['floor', long]:.1f} ms")
        print(f"  {dialect} done", flush=True)
    return lines + ratios


def psql_floor(db_url: str, scripts: list[str], sessions: int, workdir: Path) -> float:
    """Run the per-tenant SQL scripts through `sessions` concurrent psql processes; return seconds."""
    files = []
    for index in range(sessions):
        path = workdir / f"floor{sessions}_{index}.sql"
        path.write_text("\n".join(scripts[index::sessions]))
        files.append(path)
    started = time.perf_counter()
    procs = [subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db_url, "-f", str(f)],
                              stdout=subprocess.DEVNULL) for f in files]
    if any(p.wait() for p in procs):
        raise SystemExit("psql floor failed")
    return time.perf_counter() - started


def bulk_rows(pg_url: str, workdir: Path, n: int, rounds: int) -> list[str]:
    """Bulk creation and its floors: each measured in a fresh database with the control plane at head
    (no row pays for a catalog the others grew), in `rounds` rounds whose order rotates."""
    from tenants.core.names import quoted_schema
    from tenants.core.settings import TenantSettings
    from tenants.core.tenancy import Tenancy
    from tenants.fleet.create import creation_template
    from tenants.migrate.control import ensure_control
    from tenants.migrate.lifecycle import TenantSpec
    from tenants.migrate.pg_template import head_dump

    manage = [sys.executable, str(ROOT / "manage.py")]

    def floor(db_url: str, tag: str, sessions: int) -> float:
        scripts = [f"BEGIN;\n{quoted_schema(s).join(dump)}\nCOMMIT;" for s in (f"{tag}_{i:05d}" for i in range(n))]
        return psql_floor(db_url, scripts, sessions, workdir)

    def bulk(db_url: str, tag: str, jobs: str | None) -> float:
        listing = workdir / f"{tag}.txt"
        listing.write_text("\n".join(f"{tag}_{i:05d}" for i in range(n)) + "\n")
        env = {**os.environ, "DATABASE_URL": db_url, "PORTAL_INSTANCE_PATH": str(workdir),
               "PORTAL_TENANT_DIR": str(workdir / "bulk"), "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        done = subprocess.run([*manage, "create-tenants", "--from", str(listing), "--quiet",
                               *(["--jobs", jobs] if jobs else [])], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"create-tenants failed ({done.returncode}): {done.stderr[-2000:]}")
        return seconds

    ways = [("floor: psql, 1 session", lambda url, tag: floor(url, tag, 1)),
            ("floor: psql, 2 sessions", lambda url, tag: floor(url, tag, 2)),
            ("manage.py create-tenants --jobs 1", lambda url, tag: bulk(url, tag, "1")),
            ("manage.py create-tenants --jobs 2", lambda url, tag: bulk(url, tag, "2")),
            ("manage.py create-tenants (default jobs)", lambda url, tag: bulk(url, tag, None))]
    times: dict[str, list[float]] = {label: [] for label, _ in ways}
    dump: tuple[str, ...] = ()
    for round_ in range(rounds):
        for index in range(len(ways)):
            label, way = ways[(index + round_) % len(ways)]
            name, db_url = scratch_database(pg_url)
            try:
                tenancy = Tenancy(TenantSettings(control_url=db_url, tenant_dir=workdir / "bulk"))
                ensure_control(tenancy)
                if not dump:  # built and cached before any timing: every run below finds it in bulk/.templates
                    template = creation_template(tenancy, "postgresql")
                    dump = head_dump(TenantSpec("bench").storage(tenancy), template.folder, template.key,
                                     template.rendered, lock_timeout=5, statement_timeout=300) or ()
                    if not dump:
                        raise SystemExit("no dump of the head: is pg_dump of the server's major version on PATH?")
                tenancy.close()
                times[label].append(way(db_url, f"b{round_}{index}"))
            finally:
                drop_database(pg_url, name)
        print(f"  bulk round {round_ + 1} of {rounds} done", flush=True)
    med = {label: statistics.median(values) for label, values in times.items()}
    floor1, floor2 = med["floor: psql, 1 session"], med["floor: psql, 2 sessions"]
    lines = [f"\n{f'bulk creation of {n} tenants (PostgreSQL), median of {rounds}':<48} {'seconds':>8} "
             f"{'tenants/s':>10} {'x floor1':>9} {'x floor2':>9}"]
    lines += [f"{label:<48} {seconds:8.2f} {n / seconds:10.1f} {seconds / floor1:9.2f} {seconds / floor2:9.2f}"
              for label, seconds in med.items()]
    lines.append("every figure: " + "; ".join(f"{label} " + ", ".join(f"{v:.1f}" for v in values)
                                              for label, values in times.items()))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", type=int, default=200, help="tenants created in bulk (default 200)")
    parser.add_argument("--repeat", type=int, default=15, help="creations per chain-length median (default 15)")
    parser.add_argument("--pg-url", default=os.environ.get("PORTAL_TEST_PG_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--skip-bulk", action="store_true", help="only the chain-length rows")
    parser.add_argument("--skip-chain", action="store_true", help="only the bulk rows")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the bulk rows (default 3)")
    opts = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench_create_"))
    try:
        lines = [] if opts.skip_chain else chain_rows(opts.pg_url, workdir, opts.repeat)
        if not opts.skip_bulk:
            lines += bulk_rows(opts.pg_url, workdir, opts.bulk, opts.rounds)
        print("\n" + "\n".join(lines))
        print("\nIndicative figures: the machine is shared with other work.")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
