"""The fleet runner against real PostgreSQL schemas and SQLite files: outcomes, faults and records."""

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import text, update

from tenants.cli.output import plan_lines
from tenants.core.control_schema import tenants as tenants_table
from tenants.core.ledger import last_results, ledger_versions
from tenants.core.pg_schema import PostgresSchemaStorage
from tenants.core.tenancy import Tenancy
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import downgrade_tenants, for_each_tenant, upgrade_tenants
from tenants.migrate.overview import version_rows
from tenants.migrate.selection import Selection
from tests.fleet_support import LOGGED, SLOW, columns, has_table, live, make_tenants, rows, with_chain, write_chain

# 0004 adds a constraint a tenant's data can violate; 0005 adds a column after it.
CONSTRAINT_CHAIN = {
    "0004": ("0003", """
        with op.batch_alter_table("products") as batch:
            batch.create_check_constraint("stock_below_1000", "stock < 1000")
        """, """
        with op.batch_alter_table("products") as batch:
            batch.drop_constraint("stock_below_1000", type_="check")
        """),
    "0005": ("0004", """
        with op.batch_alter_table("products") as batch:
            batch.add_column(sa.Column("weight", sa.Integer(), nullable=True))
        """, """
        with op.batch_alter_table("products") as batch:
            batch.drop_column("weight")
        """),
}


@pytest.fixture
def chained(settings, tmp_path: Path, tenancy: Tenancy):  # type: ignore[no-untyped-def]
    """Return a factory: Tenancy over a temporary chain (closed after the test)."""
    made: list[Tenancy] = []

    def make(revisions: dict) -> Tenancy:
        t = Tenancy(with_chain(settings, write_chain(tmp_path, revisions, f"chain{len(made)}")))
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_failing_tenant_is_isolated_and_recorded(tenancy: Tenancy, chained) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme", "beta"])
    make_tenants(tenancy, ["bad"], stock=5000)
    fleet = chained(CONSTRAINT_CHAIN)
    report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=2))
    assert report.exit_code == 1 and report.status == "failed"
    assert {s: live(fleet, s) for s in ("acme", "bad", "beta")} == {"acme": "0005", "bad": "0003", "beta": "0005"}
    assert rows(fleet, "bad", "SELECT id, stock FROM products") == [(1, 5000)]
    assert "weight" not in columns(fleet, "bad", "products")
    last = last_results(fleet.control_engine)
    assert last["bad"]["status"] == "failed"
    assert "0004" in last["bad"]["error"] and "Traceback" in last["bad"]["detail"]
    assert ledger_versions(fleet.control_engine)["bad"] == "0003"
    # --only-failed picks the failed tenant alone; after fixing its data it reaches the target.
    with fleet.storage("bad").begin() as conn:
        conn.execute(text("UPDATE products SET stock = 10"))
    again = upgrade_tenants(fleet, Selection(only_failed=True))
    assert [r.slug for r in again.results] == ["bad"] and again.exit_code == 0
    assert live(fleet, "bad") == "0005"


def test_canary_and_fail_fast_stop_before_other_tenants(tenancy: Tenancy, chained) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["aaa_bad"], stock=5000)
    make_tenants(tenancy, ["bbb", "ccc"])
    fleet = chained(CONSTRAINT_CHAIN)
    canary = upgrade_tenants(fleet, Selection(), options=RunOptions(canary=1, jobs=2))
    assert canary.status == "canary-failed" and canary.exit_code == 1
    assert sorted(canary.not_started) == ["bbb", "ccc"] and live(fleet, "bbb") == "0003"
    fast = upgrade_tenants(fleet, Selection(), options=RunOptions(fail_fast=True, jobs=1))
    assert fast.exit_code == 1 and list(fast.not_started) == ["bbb", "ccc"]


def test_suspended_tenants_are_left_out_unless_named(tenancy: Tenancy, chained) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme", "sleepy"])
    tenancy.registry.set_status("sleepy", "suspended", "unpaid")
    fleet = chained(CONSTRAINT_CHAIN)
    report = upgrade_tenants(fleet, Selection())
    assert list(report.plan.skipped)[0][0] == "sleepy" and live(fleet, "sleepy") == "0003"
    named = upgrade_tenants(fleet, Selection(tenants=("sleepy",)))
    assert named.exit_code == 0 and live(fleet, "sleepy") == "0005"


def _hold_table_lock(tenancy: Tenancy, slug: str) -> Iterator[None]:
    storage = tenancy.storage(slug)
    if isinstance(storage, PostgresSchemaStorage):
        conn = psycopg2.connect(tenancy.settings.control_url)
        cur = conn.cursor()
        cur.execute('LOCK TABLE "tenant_' + slug + '".products IN ACCESS EXCLUSIVE MODE')  # test scaffolding
    else:
        conn = sqlite3.connect(storage.path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


def test_locked_table_times_out_while_others_finish(tenancy: Tenancy, chained, backend: str) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme", "held", "zeta"])
    fleet = chained(CONSTRAINT_CHAIN)
    holder = _hold_table_lock(fleet, "held")
    next(holder)
    try:
        report = upgrade_tenants(fleet, Selection(), options=RunOptions(lock_timeout=0.5, jobs=2))
    finally:
        next(holder, None)
    final = report.final()
    assert final["acme"].status == final["zeta"].status == "ok"
    # PostgreSQL: the ALTER waits for the table lock and hits lock_timeout. SQLite locks the
    # whole file, which is the tenant lock: the tenant is reported busy after the same wait.
    expected = "timeout" if backend == "postgresql" else "busy"
    assert final["held"].status == expected and report.exit_code == 1
    assert ("lock timeout" if backend == "postgresql" else "locked by another process") in final["held"].error
    assert live(fleet, "held") == "0003"
    retried = upgrade_tenants(fleet, Selection(), options=RunOptions(retry_busy=True))
    assert retried.exit_code == 0 and live(fleet, "held") == "0005"


def test_busy_tenant_is_reported_and_all_busy_exits_3(tenancy: Tenancy, chained) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme", "held"])
    fleet = chained(CONSTRAINT_CHAIN)
    storage = fleet.storage("held")
    with storage.begin(exclusive=True):  # another process holding the tenant's own lock
        done = threading.Event()
        outcome = {}

        def other() -> None:
            outcome["report"] = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=1, lock_timeout=0.3))
            outcome["alone"] = upgrade_tenants(fleet, Selection(tenants=("held",)),
                                               options=RunOptions(jobs=1, lock_timeout=0.3))
            done.set()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(60)
    report, alone = outcome["report"], outcome["alone"]
    assert report.final()["held"].status == "busy" and report.final()["acme"].status == "ok"
    assert report.exit_code == 1
    assert alone.exit_code == 3 and alone.status == "busy"
    assert live(fleet, "held") == "0003"


def test_unreachable_tenant_database_is_reported(tenancy: Tenancy, chained, backend: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme", "remote"])
    bad = ("postgresql://postgres@127.0.0.1:1/nowhere" if backend == "postgresql"
           else f"sqlite:///{tmp_path / 'gone' / 'remote.sqlite3'}")
    with tenancy.control_engine.begin() as conn:
        conn.execute(update(tenants_table).where(tenants_table.c.slug == "remote").values(database_url=bad))
    fleet = chained(CONSTRAINT_CHAIN)
    report = upgrade_tenants(fleet, Selection())
    final = report.final()
    assert final["acme"].status == "ok" and final["remote"].status == "unreachable"
    assert report.exit_code == 1
    assert last_results(fleet.control_engine)["remote"]["status"] == "unreachable"


def test_revision_outside_transaction_runs_alone(tenancy: Tenancy, chained, backend: str) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme", "beta"])
    fleet = chained({
        "0004": ("0003", 'op.add_column("products", sa.Column("colour", sa.String(20)))', ""),
        "0005": ("0004", 'op.create_index("ix_products_name", "products", ["name"], postgresql_concurrently=True)',
                 ""),
        "0006": ("0005", 'op.add_column("roles", sa.Column("rank", sa.Integer()))', ""),
    })
    report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=2))
    assert report.exit_code == 0, report.to_dict()
    assert next(report.plan.pending).outside_transaction == ["0005"]
    assert "revision 0005 cannot run in a transaction" in "\n".join(plan_lines(report.plan, detail=False))
    assert live(fleet, "acme") == live(fleet, "beta") == "0006"
    if backend == "postgresql":
        valid = rows(fleet, "acme", "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                    "WHERE c.relname = 'ix_products_name' "
                                    "AND c.relnamespace = current_schema()::regnamespace")
        assert valid == [(True,)]
    assert ledger_versions(fleet.control_engine)["acme"] == "0006"


def test_downgrade_round_trip_keeps_untouched_data(tenancy: Tenancy) -> None:
    make_tenants(tenancy, ["acme", "beta"])
    queries = ["SELECT id, name, description FROM roles", "SELECT id, email, full_name, active FROM users",
               "SELECT id, name, sku, price, stock FROM products"]
    before = {s: [rows(tenancy, s, q) for q in queries] for s in ("acme", "beta")}
    down = downgrade_tenants(tenancy, Selection(), "0002", RunOptions(allow_destructive=True))
    assert down.exit_code == 0 and live(tenancy, "acme") == "0002"
    assert "console_access" not in columns(tenancy, "acme", "roles")
    up = upgrade_tenants(tenancy, Selection())
    assert up.exit_code == 0 and live(tenancy, "beta") == "0003"
    assert {s: [rows(tenancy, s, q) for q in queries] for s in ("acme", "beta")} == before


def test_max_duration_stops_starting_tenants(tenancy: Tenancy, chained) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["t1", "t2", "t3", "t4"])
    fleet = chained({"0004": ("0003", SLOW.format(seconds=0.4) + LOGGED.format(rev="0004"), "")})
    report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=1, max_duration=0.3))
    assert report.status == "stopped" and report.exit_code == 4
    assert 1 <= len(report.results) < 4 and report.not_started
    for slug in report.not_started:
        assert live(fleet, slug) == "0003" and not has_table(fleet, slug, "applied_log")


def test_no_op_run_records_and_reconciles_ledger(tenancy: Tenancy) -> None:
    make_tenants(tenancy, ["acme", "beta"])
    with tenancy.control_engine.begin() as conn:
        conn.execute(text("UPDATE tenant_versions SET revision = '0001' WHERE tenant_slug = 'beta'"))
    report = upgrade_tenants(tenancy, Selection())
    assert report.exit_code == 0 and report.run_id and not report.results
    assert ledger_versions(tenancy.control_engine)["beta"] == "0003"
    assert any("ledger corrected" in note for note in report.notes)


def test_maintenance_tasks_use_the_same_runner(tenancy: Tenancy, tmp_path: Path) -> None:
    make_tenants(tenancy, ["acme", "beta"])
    for task in ("analyze", "vacuum"):
        report = for_each_tenant(tenancy, task, Selection(), options=RunOptions(jobs=2))
        assert report.exit_code == 0 and {r.status for r in report.results} == {"ok"}, report.to_dict()
    sql = "UPDATE roles SET description = description || ' 100%';\nUPDATE products SET stock = stock + 1;\n"
    report = for_each_tenant(tenancy, "sql", Selection(tenants=("acme",)), {"sql": sql, "path": "fix.sql"})
    assert report.exit_code == 0
    assert rows(tenancy, "acme", "SELECT description FROM roles") == [("Staff of acme 100%",)]
    assert rows(tenancy, "beta", "SELECT stock FROM products") == [(5,)]
    broken = for_each_tenant(tenancy, "sql", Selection(), {"sql": "UPDATE nowhere SET x = 1;", "path": "bad.sql"})
    assert broken.exit_code == 1 and last_results(tenancy.control_engine)["acme"]["status"] == "failed"


def test_a_maintenance_run_after_a_failed_upgrade_does_not_hide_the_failure(tenancy: Tenancy, chained) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme"])
    make_tenants(tenancy, ["bad"], stock=5000)
    fleet = chained(CONSTRAINT_CHAIN)
    assert upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=1)).exit_code == 1
    assert for_each_tenant(fleet, "analyze", Selection()).exit_code == 0  # every tenant's last result is now ok
    assert last_results(fleet.control_engine)["bad"]["status"] == "ok"
    assert last_results(fleet.control_engine, migrations=True)["bad"]["status"] == "failed"
    assert last_results(fleet.control_engine, migrations=False)["bad"]["kind"] == "analyze"
    rows_ = {row["slug"]: row for row in version_rows(fleet)}
    assert (rows_["bad"]["last_result"], rows_["bad"]["last_task_result"]) == ("failed", "ok")
    assert (rows_["bad"]["pending"], rows_["acme"]["pending"]) == (2, 0)
    with fleet.storage("bad").begin() as conn:
        conn.execute(text("UPDATE products SET stock = 10"))
    again = upgrade_tenants(fleet, Selection(only_failed=True))
    assert [r.slug for r in again.results] == ["bad"] and again.exit_code == 0
    assert live(fleet, "bad") == "0005"


# Every tenant but 'aaa_bad' sleeps 1 s in 0004; aaa_bad sleeps 0.3 s, then fails (its stock breaks the constraint).
SLOW_BUT_THE_BAD_ONE = {
    "0004": ("0003", """
        op.execute("DO $$BEGIN IF current_schema() <> 'tenant_aaa_bad' THEN PERFORM pg_sleep(1); "
                   "ELSE PERFORM pg_sleep(0.3); END IF; END$$")
        op.create_check_constraint("stock_below_1000", "products", "stock < 1000")
        """, ""),
}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_fail_fast_stops_tenants_waiting_in_the_workers_queue(tenancy: Tenancy, chained) -> None:  # type: ignore[no-untyped-def]
    # With 2 workers, 4 tenants are in flight: aaa_bad and bbb running, ccc and ddd queued. aaa_bad's
    # worker is free first (0.3 s against 1 s): it must not start ccc after aaa_bad failed, before the
    # runner hears of it. On a loaded machine the second worker may start after aaa_bad failed: then
    # bbb rightly does not start either (seen once in CI), so bbb is either ok or not started.
    make_tenants(tenancy, ["aaa_bad"], stock=5000)
    make_tenants(tenancy, ["bbb", "ccc", "ddd", "eee"])
    fleet = chained(SLOW_BUT_THE_BAD_ONE)
    report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=2, fail_fast=True))
    final = report.final()
    bbb_ran = "bbb" in final
    assert final["aaa_bad"].status == "failed" and (not bbb_ran or final["bbb"].status == "ok")
    assert sorted(report.not_started) == sorted({"bbb", "ccc", "ddd", "eee"} - set(final))
    assert report.exit_code == 1
    assert [live(fleet, s) for s in ("aaa_bad", "bbb", "ccc", "ddd", "eee")] == \
        ["0003", "0004" if bbb_ran else "0003", "0003", "0003", "0003"]
    assert set(last_results(fleet.control_engine)) >= set(final)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_max_duration_stops_tenants_waiting_in_the_workers_queue(tenancy: Tenancy, chained) -> None:  # type: ignore[no-untyped-def]
    # bbb and ccc start at once and take 1 s; ddd and eee wait in the workers' queue past the 0.5 s limit.
    make_tenants(tenancy, ["bbb", "ccc", "ddd", "eee"])
    fleet = chained(SLOW_BUT_THE_BAD_ONE)
    report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=2, max_duration=0.5))
    assert report.status == "stopped" and report.exit_code == 4
    assert sorted(r.slug for r in report.results) == ["bbb", "ccc"]
    assert sorted(report.not_started) == ["ddd", "eee"]
    assert [live(fleet, s) for s in ("bbb", "ccc", "ddd", "eee")] == ["0004", "0004", "0003", "0003"]
