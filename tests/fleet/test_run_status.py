"""run-status over a dispatched run whose slot was sent again: a tenant with two results counts once.

The runs are written into the ledger as Celery's workers would leave them (no broker needed):
the dispatch table, then the results, one tenant's twice.
"""

import json
import uuid
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import insert, select

from tenants.cli import scale as scale_cli
from tenants.core.clock import utcnow
from tenants.core.control_schema import dispatched_tenants, migration_runs, tenant_results
from tenants.core.tenancy import Tenancy
from tenants.fleet.run_status import progress
from tests.conftest import command_group

SLUGS = ["t1", "t2", "t3"]


def dispatched_run(tenancy: Tenancy, results: list[tuple[str, str, str]]) -> str:
    """Write a running dispatched run of SLUGS and its (slug, status, from revision) results in order; return its id."""
    run_id, now = str(uuid.uuid4()), utcnow()
    with tenancy.control_engine.begin() as conn:
        conn.execute(insert(migration_runs).values(
            id=run_id, kind="upgrade", target="0003", started_by="test", started_at=now, status="running",
            tenants_total=len(SLUGS), tenants_ok=0, tenants_failed=0, tenants_skipped=0, tenants_busy=0))
        conn.execute(insert(dispatched_tenants), [
            {"run_id": run_id, "tenant_slug": slug, "planned": "pending", "from_revision": "0002",
             "server": "main", "slot": 0, "position": index, "sent_at": now} for index, slug in enumerate(SLUGS)])
        conn.execute(insert(tenant_results), [
            {"run_id": run_id, "tenant_slug": slug, "status": status, "from_revision": from_rev,
             "to_revision": "0003" if status == "ok" else from_rev, "started_at": now + timedelta(seconds=index),
             "duration_ms": 1.0, "error": None if status == "ok" else "boom",
             "detail": "already at target" if from_rev == "0003" else None}
            for index, (slug, status, from_rev) in enumerate(results)])
    return run_id


def test_progress_counts_each_tenant_by_its_last_result(tenancy: Tenancy) -> None:
    run_id = dispatched_run(tenancy, [("t1", "ok", "0002"), ("t1", "busy", "0003"), ("t2", "failed", "0002")])
    seen = progress(tenancy.control_engine, run_id)
    assert seen["results"] == {"busy": 1, "failed": 1}  # t1's ok is not counted beside its later busy
    assert seen["waiting"] == {"main": 1} and seen["under_way"] == 1  # t3, sent and without a result


def test_following_counts_a_tenant_with_two_results_once_and_shows_the_last_results(
        tenancy: Tenancy, runner: CliRunner) -> None:
    # Every tenant has a result: the first look closes the run, and its results are still shown.
    run_id = dispatched_run(tenancy, [("t1", "ok", "0002"), ("t2", "ok", "0002"), ("t1", "ok", "0003"),
                                     ("t3", "ok", "0002")])  # t1's slot was sent again: its copy found it done
    result = runner.invoke(command_group(scale_cli), ["run-status", run_id, "--wait"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == ["[1/3 t1", "[2/3 t2", "[2/3 t1", "[3/3 t3"]
    with tenancy.control_engine.connect() as conn:
        assert conn.execute(select(migration_runs.c.status, migration_runs.c.tenants_ok).where(
            migration_runs.c.id == run_id)).one() == ("ok", 3)


def test_following_a_run_under_way_counts_a_tenant_with_two_results_once(
        tenancy: Tenancy, runner: CliRunner) -> None:
    # t3 has no result: the run stays under way, and following it ends on --timeout (exit 5).
    run_id = dispatched_run(tenancy, [("t1", "ok", "0002"), ("t2", "ok", "0002"), ("t1", "ok", "0003")])
    result = runner.invoke(command_group(scale_cli), ["run-status", run_id, "--wait", "--timeout", "1"])
    assert result.exit_code == 5, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == ["[1/3 t1", "[2/3 t2", "[2/3 t1"]
    assert "2 of 3 tenants have a result" in result.output


def test_the_json_of_a_run_under_way_counts_a_tenant_with_two_results_once(
        tenancy: Tenancy, runner: CliRunner) -> None:
    run_id = dispatched_run(tenancy, [("t1", "ok", "0002"), ("t2", "ok", "0002"), ("t1", "ok", "0003")])
    result = runner.invoke(command_group(scale_cli), ["run-status", run_id, "--json"])
    assert result.exit_code == 5, result.output
    summary = json.loads(result.output)
    assert summary["status"] == "running" and summary["progress"]["results"] == {"ok": 2}
    assert summary["progress"]["waiting"] == {"main": 1}
