"""Shared scaffolding of the upgrade benchmarks: the bench chain, psql floors, resets, timed runs."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2

ROOT = Path(__file__).resolve().parent.parent

# (down_revision, upgrade body): 3 tables, 5 column adds, 2 indexes.
CHAIN = {
    "b01": (None, 'op.create_table("customers", sa.Column("id", sa.Integer, primary_key=True), '
                  'sa.Column("name", sa.String(200), nullable=False), sa.Column("email", sa.String(254), unique=True), '
                  'sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()))'),
    "b02": ("b01", 'op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True), '
                   'sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="CASCADE")), '
                   'sa.Column("total", sa.Numeric(12, 2), nullable=False, server_default="0"), '
                   'sa.Column("placed_at", sa.DateTime(timezone=True)))'),
    "b03": ("b02", 'op.create_table("order_lines", sa.Column("id", sa.Integer, primary_key=True), '
                   'sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id", ondelete="CASCADE")), '
                   'sa.Column("sku", sa.String(64), nullable=False), sa.Column("qty", sa.Integer, nullable=False), '
                   'sa.Column("price", sa.Numeric(10, 2), nullable=False))'),
    "b04": ("b03", 'op.add_column("customers", sa.Column("phone", sa.String(40)))'),
    "b05": ("b04", 'op.add_column("orders", sa.Column("status", sa.String(20), nullable=False, '
                   'server_default="new"))'),
    "b06": ("b05", 'op.add_column("order_lines", sa.Column("discount", sa.Numeric(5, 2), server_default="0"))'),
    "b07": ("b06", 'op.create_index("ix_orders_customer_id", "orders", ["customer_id"])'),
    "b08": ("b07", 'op.create_index("ix_order_lines_order_id", "order_lines", ["order_id"])'),
    "b09": ("b08", 'op.add_column("customers", sa.Column("vip", sa.Boolean, nullable=False, '
                   'server_default=sa.false()))'),
    "b10": ("b09", 'op.add_column("orders", sa.Column("note", sa.Text))'),
}


def write_chain(directory: Path) -> Path:
    """Write the bench chain next to a copy of the project's env.py."""
    chain = directory / "chain"
    (chain / "versions").mkdir(parents=True)
    for name in ("env.py", "alembic.ini", "script.py.mako"):
        shutil.copy(ROOT / "migrations" / name, chain / name)
    for rev, (down, body) in CHAIN.items():
        (chain / "versions" / f"{rev}.py").write_text(
            f'"""bench {rev}"""\nfrom alembic import op\nimport sqlalchemy as sa\n\nrevision = {rev!r}\n'
            f"down_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n    {body}\n\n\ndef downgrade():\n    pass\n")
    return chain


def admin(url: str, sql: str) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)  # bench scaffolding: the database name is made here
    conn.close()


def drop_database(pg_url: str, name: str) -> None:
    """Drop a scratch database made by a bench, ending its sessions."""
    from tenants.core.names import quote_ident

    admin(pg_url, "DROP DATABASE IF EXISTS " + quote_ident(name) + " WITH (FORCE)")


def release(tenancy, pg_url: str, name: str, workdir: Path, *, keep: bool) -> None:  # type: ignore[no-untyped-def]
    """End a bench's run: close its Tenancy (if made), then drop its database and folder unless `keep`."""
    if tenancy is not None:
        tenancy.close()
    if not keep:
        drop_database(pg_url, name)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def fresh_copies(servers: list[str], name: str) -> Iterator[Callable[[], None]]:
    """Keep a copy of database `name` as it is now on each server (admin URLs); yield what puts it back.

    Each measured row then starts from a byte-identical database. A reset by DROP SCHEMA ...
    CASCADE leaves the catalog's indexes bloated by the row before, so each later row ran on a
    slower catalog than the first (the floor), by more the more tenants. Close every session to
    `name` first; the copies are dropped at the end.
    """
    from tenants.core.names import quote_ident

    pristine = quote_ident(name + "_pristine")
    for server in servers:
        admin(server, f"CREATE DATABASE {pristine} TEMPLATE {quote_ident(name)}")

    def restore() -> None:
        for server in servers:
            admin(server, f"DROP DATABASE {quote_ident(name)} WITH (FORCE)")
            admin(server, f"CREATE DATABASE {quote_ident(name)} TEMPLATE {pristine}")
            admin(server, "CHECKPOINT")  # none falls due inside a row's measurement

    try:
        yield restore
    finally:
        for server in servers:
            try:
                admin(server, f"DROP DATABASE IF EXISTS {pristine}")
            except psycopg2.Error:
                pass  # a far server already stopped takes its copy with it


def reset(db_url: str, slugs: list[str]) -> None:
    """Put every tenant back at base: an empty schema, and a ledger that says so.

    The ledger is cleared with the schemas: a tenant found below its recorded revision is
    refused as drifted (it was emptied behind the portal's back), which is what reset does.
    """
    from tenants.core.names import quoted_schema

    conn = psycopg2.connect(db_url)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM tenant_versions WHERE tenant_slug = ANY(%s)", (slugs,))
        for start in range(0, len(slugs), 50):  # commit in batches: each dropped object takes a lock slot
            for slug in slugs[start:start + 50]:
                cur.execute("DROP SCHEMA IF EXISTS " + quoted_schema(slug) + " CASCADE")
                cur.execute("CREATE SCHEMA " + quoted_schema(slug))
            conn.commit()
    # The dead catalog rows of the dropped schemas vacuumed away, and a fresh checkpoint. The
    # catalog's indexes stay as large as the last run made them, though: a bench that measures
    # several rows keeps a copy of the reset world and starts each row from it (fresh_copies).
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM")
        cur.execute("CHECKPOINT")
    conn.close()


def stolen() -> float:
    """Return the CPU seconds the hypervisor has taken from this machine since boot (0 where /proc/stat has none).

    A row measured while another guest held the cores is slower for a reason the bench does not
    control; the benches print this beside their rows so such a round can be told apart.
    """
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def timed(args: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command; return (seconds, result), with nothing else of the bench running beside it.

    Rows set against a psql floor are timed this way, as the floors are (psql_sessions): on this
    2-core machine measure()'s sampler thread took CPU from the fleet row alone, about 5% of its
    time at 1,000 tenants when it sampled every 20 ms (6 interleaved pairs, sampled against not).
    """
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done


def measure(args: list[str], env: dict, memory: dict | None = None) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run a command; return (seconds, peak RSS of its process tree in bytes, result).

    With `memory`, also fill it with peaks that tell the tree's RSS apart: `pss` (the tree's
    proportional set size: pages shared by the forked workers counted once, not once per
    process as in the RSS sum), `parent` (the command's own RSS) and `worker_uss` (the largest
    memory a worker holds of its own). RSS is sampled every 0.1 s, smaps (slower to read) every
    0.2 s: a fleet run's memory is a plateau its workers hold while they live, and each sample
    costs CPU the measured command runs beside (timed() runs a command with no sampler).
    """
    peak = 0
    peaks = {"pss": 0, "parent": 0, "worker_uss": 0}
    started = time.perf_counter()
    proc = psutil.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        ticks = 0
        while not done.is_set():
            try:
                tree = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
                if memory is not None and ticks % 2 == 0:
                    full = {p.pid: p.memory_full_info() for p in tree if p.is_running()}
                    peaks["pss"] = max(peaks["pss"], sum(m.pss for m in full.values()))
                    peaks["parent"] = max(peaks["parent"], full[proc.pid].rss if proc.pid in full else 0)
                    peaks["worker_uss"] = max([peaks["worker_uss"], *(m.uss for pid, m in full.items()
                                                                       if pid != proc.pid)])
            except psutil.Error:
                pass
            ticks += 1
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if memory is not None:
        memory.update(peaks)
    return seconds, peak, subprocess.CompletedProcess(args, proc.returncode, out, err)


def psql_floor(db_url: str, scripts: list[str], sessions: int, workdir: Path) -> float:
    """Run the per-tenant SQL scripts through `sessions` concurrent psql processes; return seconds."""
    return psql_sessions([(db_url, scripts[index::sessions]) for index in range(sessions)], workdir)


def psql_sessions(sessions: list[tuple[str, list[str]]], workdir: Path) -> float:
    """Run each (database URL, scripts) through its own psql process, all at once; return seconds."""
    files = []
    for index, (url, scripts) in enumerate(sessions):
        path = workdir / f"floor{len(sessions)}_{index}.sql"
        path.write_text("\n".join(scripts))
        files.append((url, path))
    started = time.perf_counter()
    procs = [subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(path)],
                              stdout=subprocess.DEVNULL) for url, path in files]
    if any(p.wait() for p in procs):
        raise SystemExit("psql floor failed")
    return time.perf_counter() - started


@dataclass(frozen=True)
class ScratchFleet:
    """A throw-away database with the control plane, N registered tenants (no schemas yet) and the chain rendered."""

    name: str
    url: str
    workdir: Path
    chain: Path
    slugs: list[str]
    body: str  # the whole chain's SQL for one schema, base -> head
    revisions: int


@contextmanager
def stoppable() -> Iterator[None]:
    """Inside, SIGTERM raises SystemExit: the finally blocks that drop scratch databases and clusters run."""
    def stop(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def scratch_fleet(pg_url: str, tenants: int, prefix: str, *, keep: bool = False) -> Iterator[ScratchFleet]:
    """Make a ScratchFleet on the server of `pg_url`; drop it and its folder afterwards unless `keep` (SIGTERM too)."""
    from sqlalchemy.engine import make_url

    from tenants.core.names import quote_ident
    from tenants.core.settings import TenantSettings
    from tenants.core.tenancy import Tenancy
    from tenants.migrate.control import ensure_control
    from tenants.migrate.replay import render_range

    name = f"bench_{uuid.uuid4().hex[:10]}"
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    with stoppable():
        admin(pg_url, "CREATE DATABASE " + quote_ident(name))
        try:
            chain = write_chain(workdir)
            tenancy = Tenancy(TenantSettings(control_url=url, tenant_dir=workdir / "tenants", revision_dir=chain))
            try:
                ensure_control(tenancy)
                slugs = [f"t{i:05d}" for i in range(tenants)]
                for slug in slugs:
                    tenancy.registry.add(slug, slug, None)
                    tenancy.registry.set_status(slug, "active")
                rendered = render_range(tenancy.scripts, "postgresql", None, tenancy.head())
            finally:
                tenancy.close()
            body = "\n".join(sql for _, statements in rendered for sql in statements)
            yield ScratchFleet(name, url, workdir, chain, slugs, body, len(rendered))
        finally:
            if keep:
                print(f"kept database {name} and folder {workdir}")
            else:
                drop_database(pg_url, name)
                shutil.rmtree(workdir, ignore_errors=True)
