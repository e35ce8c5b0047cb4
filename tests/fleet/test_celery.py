"""upgrade-all-tenants --via celery with real Redis, real worker processes and two PostgreSQL servers."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tenants.cli import fleet as fleet_cli
from tenants.cli import scale as scale_cli
from tenants.core.control_schema import dispatched_tenants, fleet_locks, migration_runs, tenant_results
from tenants.core.ledger import ledger_versions
from tenants.core.settings import PROJECT_ROOT, TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.fleet.celery.relay import run_step
from tenants.fleet.create import create_tenant
from tenants.migrate.control import ensure_control
from tests.conftest import command_group, run_manage
from tests.fleet_support import LOGGED, SLOW, live, make_tenants, rows, with_chain, write_chain
from tests.scale_support import (
    active_sleeps,
    celery_env,
    database_on,
    intervals,
    kill_worker,
    max_overlap,
    purge_queue,
    workers,
)


def slow_logged_chain(tmp_path: Path, seconds: float) -> Path:
    """A chain whose 0004 sleeps, then logs that it ran (a second run would fail on the table)."""
    return write_chain(tmp_path, {"0004": ("0003", SLOW.format(seconds=seconds) + LOGGED.format(rev="0004"),
                                           "op.drop_table('applied_log')")})


@pytest.fixture
def fleet(pg_control_url: str, server2: str, tmp_path: Path) -> Iterator[dict]:
    """Tenants near (schemas of the control database) and far (a database on the second server)."""
    with database_on(server2) as far_url:
        settings = TenantSettings(control_url=pg_control_url, tenant_dir=tmp_path / "tenants", lock_timeout=2.0)
        tenancy = Tenancy(settings)
        ensure_control(tenancy)
        made: list[Tenancy] = [tenancy]

        def add(count: int, chain: Path) -> Tenancy:
            for i in range(count):
                create_tenant(tenancy, f"near{i:02d}")
                create_tenant(tenancy, f"far{i:02d}", database_url=far_url)
            made.append(Tenancy(with_chain(settings, chain)))
            return made[-1]

        try:
            yield {"settings": settings, "tenancy": tenancy, "add": add, "urls": [pg_control_url, far_url]}
        finally:
            for t in made:
                t.close()


def env_for(settings: TenantSettings, chain: Path, tmp_path: Path, **celery: str) -> dict[str, str]:
    """Environment of the command and the workers: same control plane, chain and queue."""
    return {"DATABASE_URL": settings.control_url, "PORTAL_INSTANCE_PATH": str(tmp_path),
            "PORTAL_TENANT_DIR": str(settings.tenant_dir), "PORTAL_REVISION_DIR": str(chain),
            "PORTAL_LOCK_TIMEOUT": "2", **celery_env(celery)}


def _send_beat_task(env: dict[str, str], kwargs: dict) -> dict:
    """Send tenant_portal.dispatch_fleet as beat would, to this test's queue, and return its result."""
    from celery import Celery

    app = Celery("beat_test", broker=env["CELERY_BROKER_URL"], backend=env["CELERY_RESULT_BACKEND"])
    try:
        sent = app.send_task("tenant_portal.dispatch_fleet", kwargs=kwargs, queue=env["CELERY_QUEUE"])
        summary = sent.get(timeout=60)
        sent.forget()
        return summary
    finally:
        app.close()


def results_per_tenant(tenancy: Tenancy, run_id: str) -> dict[str, list[str]]:
    c = tenant_results.c
    with tenancy.control_engine.connect() as conn:
        found: dict[str, list[str]] = {}
        for slug, status in conn.execute(select(c.tenant_slug, c.status).where(c.run_id == run_id).order_by(c.id)):
            found.setdefault(slug, []).append(status)
        return found


def run_row(tenancy: Tenancy, run_id: str):  # type: ignore[no-untyped-def]
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(migration_runs).where(migration_runs.c.id == run_id)).one()


def lock_rows(tenancy: Tenancy) -> int:
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(fleet_locks)).scalar()


@pytest.mark.slow
@pytest.mark.celery
def test_two_workers_fifty_tenants_two_servers_once_each_within_bound(fleet: dict, tmp_path: Path) -> None:
    chain = slow_logged_chain(tmp_path, 0.1)
    upgraded = fleet["add"](25, chain)
    tenancy = fleet["tenancy"]
    env = env_for(fleet["settings"], chain, tmp_path)
    with workers(env, tmp_path, count=2, concurrency=2):
        began = time.monotonic()
        sent = run_manage(["upgrade-all-tenants", "--via", "celery", "--jobs-per-server", "1", "--no-wait",
                           "--json"], env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        dispatched = json.loads(sent.stdout)
        run_id = dispatched["run_id"]
        assert dispatched["status"] == "dispatched" and time.monotonic() - began < 15
        status = run_manage(["run-status", run_id, "--wait", "--json"], env)
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        assert report["status"] == "ok" and report["counts"]["ok"] == 50
        # A redelivered task for a tenant with a result is a no-op: nothing run, nothing recorded.
        again = run_step(upgraded, run_id, "far07")
        assert again.outcome == "recorded-before" and again.next_slug is None
        # The Celery beat entry's task: a maintenance run over every tenant, handed to the workers.
        beat = _send_beat_task(env, {"task": "analyze", "jobs_per_server": 2})
        assert beat["kind"] == "analyze" and beat["status"] == "dispatched"
        analyzed = run_manage(["run-status", beat["run_id"], "--wait"], env)
        assert analyzed.returncode == 0 and "analyze ok: 50 ok" in analyzed.stdout, analyzed.stdout + analyzed.stderr
    slugs = [f"{side}{i:02d}" for side in ("near", "far") for i in range(25)]
    assert results_per_tenant(tenancy, run_id) == {slug: ["ok"] for slug in slugs}
    assert {slug: live(upgraded, slug) for slug in slugs} == {slug: "0004" for slug in slugs}
    assert all(rows(upgraded, slug, "SELECT note FROM applied_log") == [("0004",)] for slug in slugs)
    assert {slug: rev for slug, rev in ledger_versions(tenancy.control_engine).items()} == dict.fromkeys(slugs, "0004")
    row = run_row(tenancy, run_id)
    assert (row.status, row.tenants_ok, row.tenants_total) == ("ok", 50, 50) and row.finished_at is not None
    assert lock_rows(tenancy) == 0
    spans = intervals(tenancy.control_engine, run_id)
    assert max_overlap([span for slug, span in spans.items() if slug.startswith("near")]) == 1
    assert max_overlap([span for slug, span in spans.items() if slug.startswith("far")]) == 1
    assert max_overlap(list(spans.values())) == 2  # the two servers did work side by side


@pytest.mark.slow
@pytest.mark.celery
def test_worker_killed_mid_run_the_other_finishes_nothing_twice(fleet: dict, tmp_path: Path) -> None:
    chain = slow_logged_chain(tmp_path, 0.3)
    upgraded = fleet["add"](10, chain)
    tenancy = fleet["tenancy"]
    # A task taken by a dead worker goes back to the queue 2 s after delivery (swept every second).
    env = env_for(fleet["settings"], chain, tmp_path, CELERY_VISIBILITY_TIMEOUT="2", CELERY_RESTORE_INTERVAL="1")
    full_env = {**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)}
    with workers(env, tmp_path, count=2, concurrency=1) as (victim, survivor):
        command = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "manage.py"), "upgrade-all-tenants",
                                    "--via", "celery", "--jobs-per-server", "2"], env=full_env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            # Both workers inside a tenant's transaction (in pg_sleep): the kill lands mid-tenant.
            while not (_results(tenancy) >= 2 and active_sleeps(fleet["urls"]) == 2):
                assert time.monotonic() < deadline and command.poll() is None, "the run never got going"
                time.sleep(0.02)
            under_way = _under_way(tenancy)
            kill_worker(victim)
            out, err = command.communicate(timeout=90)
        finally:
            if command.poll() is None:
                command.kill()
    assert command.returncode == 0, out + err
    assert "upgrade ok: 20 ok, 0 failed" in out and "[20/20 " in out
    run_id = out.split(" run ")[-1].split()[0]
    slugs = [f"{side}{i:02d}" for side in ("near", "far") for i in range(10)]
    assert len(under_way) == 4  # one task sent per slot (2 servers x 2), two of them inside a worker
    assert results_per_tenant(tenancy, run_id) == {slug: ["ok"] for slug in slugs}
    assert all(live(upgraded, slug) == "0004" for slug in slugs)
    assert all(rows(upgraded, slug, "SELECT note FROM applied_log") == [("0004",)] for slug in slugs)
    assert run_row(tenancy, run_id).status == "ok" and lock_rows(tenancy) == 0


def _results(tenancy: Tenancy) -> int:
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tenant_results)
                            .where(tenant_results.c.status == "ok", tenant_results.c.to_revision == "0004")).scalar()


def _under_way(tenancy: Tenancy) -> set[str]:
    d, r = dispatched_tenants.c, tenant_results.c
    with tenancy.control_engine.connect() as conn:
        recorded = select(r.tenant_slug).where(r.run_id == d.run_id)
        return set(conn.execute(select(d.tenant_slug).where(d.sent_at.is_not(None),
                                                            d.tenant_slug.not_in(recorded))).scalars())


@pytest.fixture
def pair(pg_control_url: str, tmp_path: Path) -> Iterator[tuple[TenantSettings, Tenancy]]:
    """Two tenants at 0003 on a PostgreSQL control plane, for runs that must change nothing."""
    settings = TenantSettings(control_url=pg_control_url, tenant_dir=tmp_path / "tenants", lock_timeout=2.0)
    tenancy = Tenancy(settings)
    ensure_control(tenancy)
    try:
        make_tenants(tenancy, ["acme", "beta"])
        yield settings, tenancy
    finally:
        tenancy.close()


def run_count(tenancy: Tenancy) -> int:
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(migration_runs)).scalar()


def assert_nothing_changed(tenancy: Tenancy, runs: int) -> None:
    """No new run, no lock, no tenant sent to a worker, both tenants where they were."""
    assert run_count(tenancy) == runs
    with tenancy.control_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(dispatched_tenants)).scalar() == 0
    assert lock_rows(tenancy) == 0
    assert live(tenancy, "acme") == live(tenancy, "beta") == "0003"


@pytest.mark.celery
def test_broker_unreachable_exits_3_and_changes_nothing(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, tenancy = pair
    env = env_for(settings, slow_logged_chain(tmp_path, 0.0), tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    runs = run_count(tenancy)
    result = run_manage(["upgrade-all-tenants", "--via", "celery"], env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.startswith("Error: cannot reach the Celery broker redis://127.0.0.1:1/0")
    assert result.stderr.count("\n") == 1 and "nothing was changed" in result.stderr and result.stdout == ""
    assert_nothing_changed(tenancy, runs)


@pytest.fixture
def group() -> click.Group:
    return command_group(fleet_cli, scale_cli)


@pytest.mark.parametrize("args, message", [
    (["upgrade-all-tenants", "--jobs-per-server", "0"], "--jobs-per-server must be at least 1"),
    (["upgrade-all-tenants", "--no-wait"], "--no-wait needs --via celery"),
    (["upgrade-all-tenants", "--via", "celery", "--jobs", "2"], None),
    (["upgrade-all-tenants", "--via", "celery", "--canary", "1"], None),
    (["run-status", "00000000-0000-0000-0000-000000000000"], "unknown run"),
])
def test_bad_usage_exits_2(group, runner: CliRunner, tenancy: Tenancy, backend: str, args, message) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme"])
    result = runner.invoke(group, args)
    assert result.exit_code == 2, result.output
    if message is None:  # a SQLite control plane is refused first: workers elsewhere could not record
        message = "needs a PostgreSQL control plane" if backend == "sqlite" else "--via celery"
    assert message in result.output and "Traceback" not in result.output
    assert live(tenancy, "acme") == "0003"


@pytest.mark.slow
@pytest.mark.celery
def test_fail_fast_stops_each_slot_and_run_status_closes_the_run(pg_control_url: str, tmp_path: Path) -> None:
    """The relay steps a worker runs, driven here by hand: a failure stops the slot, the rest is not started."""
    from tests.fleet.test_runner import CONSTRAINT_CHAIN

    settings = TenantSettings(control_url=pg_control_url, tenant_dir=tmp_path / "tenants", lock_timeout=2.0)
    tenancy = Tenancy(settings)
    ensure_control(tenancy)
    make_tenants(tenancy, ["aaa_bad"], stock=5000)
    make_tenants(tenancy, ["bbb", "ccc"])
    chain = write_chain(tmp_path, CONSTRAINT_CHAIN)
    fleet = Tenancy(with_chain(settings, chain))
    env = env_for(settings, chain, tmp_path)
    try:
        sent = run_manage(["upgrade-all-tenants", "--via", "celery", "--no-wait", "--fail-fast",
                           "--jobs-per-server", "1"], env)
        assert sent.returncode == 0 and "follow it with: manage.py run-status" in sent.stdout, sent.stderr
        run_id = sent.stdout.split("run-status ")[-1].split()[0]
        assert run_manage(["upgrade-all-tenants"], env).returncode == 3  # the run holds the fleet lock
        still = run_manage(["run-status", run_id], env)
        assert still.returncode == 5 and "0 of 3 tenants have a result" in still.stdout
        first = run_step(fleet, run_id, "aaa_bad")
        assert (first.outcome, first.result.status, first.next_slug) == ("ran", "failed", "bbb")
        second = run_step(fleet, run_id, "bbb")
        assert second.outcome == "stopped" and second.slot_done
        done = run_manage(["run-status", run_id, "--json"], env)
        report = json.loads(done.stdout)
        assert done.returncode == 1 and report["status"] == "failed" and report["not_started"] == ["bbb", "ccc"]
        assert results_per_tenant(tenancy, run_id) == {"aaa_bad": ["failed"], "bbb": ["skipped"], "ccc": ["skipped"]}
        assert live(fleet, "bbb") == "0003" and lock_rows(tenancy) == 0
    finally:
        purge_queue(env)
        fleet.close()
        tenancy.close()


@pytest.mark.celery
def test_a_blocked_revision_is_refused_before_anything_is_sent_to_the_workers(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, tenancy = pair
    chain = write_chain(tmp_path, {"0004": ("0003", "with op.batch_alter_table('products') as batch:\n"
                                                    "    batch.drop_column('name')", "pass")})
    runs = run_count(tenancy)
    result = run_manage(["upgrade-all-tenants", "--via", "celery", "--no-wait"], env_for(settings, chain, tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "drop-column" in result.stderr and "Traceback" not in result.stderr
    assert_nothing_changed(tenancy, runs)
