"""The fleet commands as operators and scheduled jobs use them: output, exit codes, crashes, overlaps."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tenants.cli import fleet as fleet_cli
from tenants.cli import tenant as tenant_cli
from tenants.core.control_schema import migration_runs, tenant_results
from tenants.core.ledger import ledger_versions
from tenants.core.settings import PROJECT_ROOT
from tenants.core.tenancy import Tenancy
from tenants.fleet.runs import upgrade_tenants
from tenants.migrate.selection import Selection
from tests.conftest import command_group, run_manage
from tests.fleet_support import LOGGED, SLOW, has_table, live, make_tenants, rows, with_chain, write_chain


@pytest.fixture
def group() -> click.Group:
    """The operator commands without the web app."""
    return command_group(tenant_cli, fleet_cli)


def _runs(tenancy: Tenancy) -> int:
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(migration_runs)).scalar()


@pytest.mark.parametrize("args, message", [
    (["upgrade-all-tenants", "--to", "nope"], "unknown revision 'nope'"),
    (["upgrade-all-tenants", "--jobs", "0"], "--jobs must be at least 1"),
    (["upgrade-all-tenants", "--tenant", "nosuch"], "unknown tenant 'nosuch'"),
    (["upgrade-all-tenants", "--canary", "5"], "--canary 5 is larger than the 2 selected tenants"),
    (["for-each-tenant", "nosuch"], "unknown task 'nosuch'"),
    (["for-each-tenant", "sql", "missing.sql"], "no SQL file missing.sql"),
    (["downgrade-tenants", "--to", "0001"], "without confirmation: pass --yes"),
    (["upgrade-all-tenants", "--to", "0001"], "use downgrade-tenants"),
])
def test_bad_usage_exits_2_and_changes_nothing(group, runner: CliRunner, tenancy: Tenancy, args, message) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme", "beta"])
    runs = _runs(tenancy)
    result = runner.invoke(group, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert _runs(tenancy) == runs
    assert live(tenancy, "acme") == live(tenancy, "beta") == "0003"


@pytest.mark.parametrize("sql, refused", [
    ("UPDATE products SET stock = 0;\nCOMMIT;", "COMMIT"),
    ("BEGIN;\nUPDATE products SET stock = 0;", "BEGIN"),
    ("UPDATE products SET stock = 0;\nROLLBACK;", "ROLLBACK"),
    ("SET search_path TO public;\nUPDATE products SET stock = 0;", "SET search_path"),
    ("RESET ALL;", "RESET"),
    ("SELECT set_config('search_path', 'public', false);", "set_config"),
    ("UPDATE products SET stock = ;", "cannot be parsed"),
])
def test_sql_file_that_escapes_the_transaction_is_refused(group, runner: CliRunner, tenancy: Tenancy,  # type: ignore[no-untyped-def]
                                                          tmp_path: Path, backend: str, sql: str, refused: str) -> None:
    make_tenants(tenancy, ["acme"])
    script = tmp_path / "fix.sql"
    script.write_text(sql)
    runs = _runs(tenancy)
    result = runner.invoke(group, ["for-each-tenant", "sql", str(script)])
    assert result.exit_code == 2, result.output
    assert refused in result.output and "Traceback" not in result.output
    assert _runs(tenancy) == runs and rows(tenancy, "acme", "SELECT stock FROM products") == [(5,)]
    fine = tmp_path / "fine.sql"
    local = "SET LOCAL statement_timeout = '5s';\n" if backend == "postgresql" else ""  # SQLite has no SET
    fine.write_text(local + "UPDATE products SET stock = stock + 1 WHERE id = 1;")
    done = runner.invoke(group, ["for-each-tenant", "sql", str(fine)])
    assert done.exit_code == 0, done.output
    assert rows(tenancy, "acme", "SELECT stock FROM products") == [(6,)]


def test_plain_lines_json_report_and_versions(group, runner: CliRunner, tenancy: Tenancy, cli_env) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme", "beta"])
    result = runner.invoke(group, ["downgrade-tenants", "--to", "0002", "--yes", "--jobs", "1", "--allow-destructive"])
    assert result.exit_code == 0, result.output
    assert "[1/2 acme] 0003 -> 0002 ok" in result.output
    dry = runner.invoke(group, ["upgrade-all-tenants", "--dry-run"])
    assert dry.exit_code == 0 and "2 tenants 0002 -> 0003 (1 revisions): acme, beta" in dry.output
    assert live(tenancy, "acme") == "0002"
    listed = runner.invoke(group, ["tenant-versions", "--json"]).output
    versions = json.loads(listed)
    assert [(r["slug"], r["revision"], r["pending"]) for r in versions] == [("acme", "0002", 1), ("beta", "0002", 1)]
    assert [json.loads(line.strip().rstrip(","))["slug"] for line in listed.splitlines()[1:-1]] == ["acme", "beta"]
    done = run_manage(["upgrade-all-tenants", "--json"], cli_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "ok" and report["counts"]["ok"] == 2 and report["target"] == "0003"
    assert {r["slug"]: (r["from"], r["to"], r["status"]) for r in report["results"]} == {
        "acme": ("0002", "0003", "ok"), "beta": ("0002", "0003", "ok")}
    noop = runner.invoke(group, ["upgrade-all-tenants"])
    assert noop.exit_code == 0 and "0 pending, 2 at target" in noop.stdout


def test_sql_prints_each_tenant_and_touches_nothing(group, runner: CliRunner, tenancy: Tenancy, backend: str) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme"])
    assert runner.invoke(group, ["downgrade-tenants", "--to", "0002", "--yes", "--allow-destructive"]).exit_code == 0
    runs = _runs(tenancy)
    result = runner.invoke(group, ["upgrade-all-tenants", "--sql"])
    if backend == "postgresql":
        assert result.exit_code == 0, result.output
        assert 'SET LOCAL search_path TO "tenant_acme";' in result.output
        assert "ALTER TABLE roles ADD COLUMN console_access" in result.output
    else:  # SQLite batch mode needs a live connection to reflect the table: said, not guessed
        assert result.exit_code == 1 and "cannot render offline" in result.output
    assert live(tenancy, "acme") == "0002" and _runs(tenancy) == runs


def test_unreachable_control_database_exits_3(group) -> None:  # type: ignore[no-untyped-def]
    env = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}
    result = CliRunner(env=env).invoke(group, ["upgrade-all-tenants"])
    assert result.exit_code == 3 and "cannot reach database" in result.output


def _slow_env(cli_env: dict, settings, tmp_path: Path, seconds: float) -> tuple[dict, Tenancy]:  # type: ignore[no-untyped-def]
    chain = write_chain(tmp_path, {"0004": ("0003", SLOW.format(seconds=seconds) + LOGGED.format(rev="0004"), "")})
    return {**cli_env, "PORTAL_REVISION_DIR": str(chain)}, Tenancy(with_chain(settings, chain))


def _start(args: list[str], env: dict) -> subprocess.Popen:
    full_env = {**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen([sys.executable, str(PROJECT_ROOT / "manage.py"), *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)


@pytest.mark.slow
def test_two_runs_at_once_migrate_each_tenant_once(tenancy: Tenancy, settings, cli_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    slugs = ["t1", "t2", "t3", "t4"]
    make_tenants(tenancy, slugs)
    env, fleet = _slow_env(cli_env, settings, tmp_path, 0.5)
    try:
        first, second = _start(["upgrade-all-tenants", "--jobs", "1"], env), _start(["upgrade-all-tenants"], env)
        outputs = [p.communicate(timeout=120) for p in (first, second)]
        codes = sorted(p.returncode for p in (first, second))
        assert codes == [0, 3], outputs
        loser = outputs[[first.returncode, second.returncode].index(3)][0]
        assert "fleet lock is held by run" in loser and "BUSY" in loser
        for slug in slugs:
            assert live(fleet, slug) == "0004" and rows(fleet, slug, "SELECT note FROM applied_log") == [("0004",)]
        with fleet.control_engine.connect() as conn:
            ok = conn.execute(select(tenant_results.c.tenant_slug, func.count()).where(
                tenant_results.c.status == "ok", tenant_results.c.to_revision == "0004")
                .group_by(tenant_results.c.tenant_slug)).all()
        assert dict(ok) == dict.fromkeys(slugs, 1)
    finally:
        fleet.close()


@pytest.mark.slow
def test_sigkill_mid_run_leaves_tenants_consistent_and_rerun_finishes(tenancy: Tenancy, settings, cli_env,  # type: ignore[no-untyped-def]
                                                                     tmp_path: Path) -> None:
    slugs = ["k1", "k2", "k3", "k4", "k5", "k6"]
    make_tenants(tenancy, slugs)
    env, fleet = _slow_env(cli_env, settings, tmp_path, 0.4)
    try:
        run = _start(["upgrade-all-tenants", "--jobs", "2"], env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(v == "0004" for v in ledger_versions(fleet.control_engine).values()):
                break
            time.sleep(0.05)
        os.killpg(run.pid, signal.SIGKILL)  # the runner and its workers, mid-transaction
        run.communicate(timeout=30)
        recorded = ledger_versions(fleet.control_engine)
        states = {slug: live(fleet, slug) for slug in slugs}
        assert "0004" in states.values() and "0003" in states.values(), states
        for slug, revision in states.items():
            assert has_table(fleet, slug, "applied_log") == (revision == "0004")  # schema matches its revision
            assert recorded[slug] in ("0003", revision)  # the ledger is never ahead of the tenant
        time.sleep(0.5)  # a killed client's server session may still sit in pg_sleep, holding its lock
        report = upgrade_tenants(fleet, Selection(), options=_retry())
        assert report.exit_code == 0, report.to_dict()
        assert any("took over the fleet lock from stale run" in note for note in report.notes)
        assert {slug: live(fleet, slug) for slug in slugs} == dict.fromkeys(slugs, "0004")
        assert ledger_versions(fleet.control_engine) == dict.fromkeys(slugs, "0004")
        for slug in slugs:
            assert rows(fleet, slug, "SELECT count(*) FROM applied_log") == [(1,)]
    finally:
        fleet.close()


def _retry():  # type: ignore[no-untyped-def]
    from tenants.fleet.options import RunOptions

    return RunOptions(retry_busy=True)
