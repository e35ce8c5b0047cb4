"""Fast tenants travel to the workers in batches: nothing is lost, skipped or run after the run stops."""

import threading
from concurrent.futures import wait
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from tenants.core.ledger import last_results, ledger_versions
from tenants.core.names import lock_key, quoted_schema
from tenants.core.tenancy import Tenancy
from tenants.fleet.options import RunOptions
from tenants.fleet.pool import MAX_BATCH, WorkerPool, batch_size
from tenants.fleet.runs import upgrade_tenants
from tenants.fleet.units import read_back_result
from tenants.migrate.selection import Selection
from tenants.migrate.unit import migration_read_back
from tests.fleet_support import live, make_tenants, with_chain, write_chain
from tests.scale_support import intervals, max_overlap

SLUGS = [f"t{i:02d}" for i in range(24)]

# 0004 fails at once in t12_bad (its stock breaks the constraint) and is quick everywhere else.
FAILS_IN_THE_MIDDLE = {
    "0004": ("0003", 'op.create_check_constraint("stock_below_1000", "products", "stock < 1000")', ""),
}

ADDS_A_COLUMN = {"0004": ("0003", 'op.add_column("products", sa.Column("weight", sa.Integer(), nullable=True))', "")}

# 0004 kills the worker process that runs it in t12_dies (op.get_bind(): it runs online, in a worker).
KILLS_ITS_WORKER = {"0004": ("0003", """
    # tenant-portal: acknowledge unreviewable -- it kills its worker on purpose
    import os, signal
    bind = op.get_bind()
    sql = "SELECT current_schema()" if bind.dialect.name == "postgresql" else "SELECT file FROM pragma_database_list"
    if "t12_dies" in bind.exec_driver_sql(sql).scalar():  # its schema, or its file
        os.kill(os.getpid(), signal.SIGKILL)
    op.add_column("products", sa.Column("weight", sa.Integer(), nullable=True))
    """, "")}


def test_batch_size_follows_the_tenants_time_and_leaves_the_tail_spread() -> None:
    assert batch_size(1000, 2, None) == 1  # nothing timed yet
    assert batch_size(1000, 2, 0.05) == 5  # about BATCH_SECONDS (0.25 s) of work
    assert batch_size(1000, 2, 0.001) == MAX_BATCH
    assert batch_size(1000, 2, 0.3) == 1  # a slow tenant travels alone
    assert batch_size(12, 2, 0.001) == 3  # the last tenants are shared by every worker
    assert batch_size(1, 2, 0.001) == 1


@pytest.fixture
def sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of tenants in every batch the runner sends to its workers (WorkerPool.submit, watched)."""
    seen: list[int] = []
    submit = WorkerPool.submit

    def watched(self, jobs, batch, **kw):  # type: ignore[no-untyped-def]
        seen.append(len(batch))
        return submit(self, jobs, batch, **kw)

    monkeypatch.setattr(WorkerPool, "submit", watched)
    return seen


def fleet(settings, tmp_path: Path, tenancy: Tenancy, bad: str, revisions: dict) -> Tenancy:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, SLUGS)
    make_tenants(tenancy, [bad], stock=5000)
    return Tenancy(with_chain(settings, write_chain(tmp_path, revisions)))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_fail_fast_in_a_batch_starts_nothing_after_the_failure(settings, tmp_path: Path, tenancy: Tenancy,  # type: ignore[no-untyped-def]
                                                               sizes: list[int]) -> None:
    fleet_ = fleet(settings, tmp_path, tenancy, "t12_bad", FAILS_IN_THE_MIDDLE)
    try:
        report = upgrade_tenants(fleet_, Selection(), options=RunOptions(jobs=2, fail_fast=True))
        assert max(sizes) > 1, f"no batch of several tenants was sent: {sizes}"
        final = report.final()
        assert final["t12_bad"].status == "failed" and report.exit_code == 1
        ok = {slug for slug, result in final.items() if result.status == "ok"}
        assert ok | set(report.not_started) | {"t12_bad"} == {*SLUGS, "t12_bad"}
        assert {"t22", "t23"} <= set(report.not_started), "tenants after the failure were started"
        assert all(live(fleet_, slug) == "0004" for slug in ok)
        assert all(live(fleet_, slug) == "0003" for slug in [*report.not_started, "t12_bad"])
        assert set(last_results(fleet_.control_engine)) >= ok | {"t12_bad"}
    finally:
        fleet_.close()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_worker_dying_mid_batch_loses_no_tenant_and_the_next_run_finishes(  # type: ignore[no-untyped-def]
        settings, tmp_path: Path, tenancy: Tenancy, sizes: list[int]) -> None:
    fleet_ = fleet(settings, tmp_path, tenancy, "t12_dies", KILLS_ITS_WORKER)
    try:
        report = upgrade_tenants(fleet_, Selection(), options=RunOptions(jobs=2))
        assert max(sizes) > 1, f"no batch of several tenants was sent: {sizes}"
        final = report.final()
        assert report.exit_code == 1 and final["t12_dies"].status == "failed"
        assert "a worker process died" in final["t12_dies"].error
        assert set(final) == {*SLUGS, "t12_dies"} and not report.not_started  # every tenant has its result
        # Each result is the tenant's truth, read back from it: a tenant whose worker died after its commit
        # (its batch's results died with the worker) is ok, one rolled back or never started is failed.
        assert {slug: live(fleet_, slug) for slug in final} == {
            slug: "0004" if result.status == "ok" else "0003" for slug, result in final.items()}
        assert live(fleet_, "t12_dies") == "0003"
        recorded = ledger_versions(fleet_.control_engine)  # the ledger holds the same truth
        assert {slug: recorded.get(slug) for slug in final} == {slug: live(fleet_, slug) for slug in final}
        assert {slug: row["status"] for slug, row in last_results(fleet_.control_engine).items()} == {
            slug: result.status for slug, result in final.items()}
        # The next run, without the tenant that kills its worker, finishes every other one.
        again = upgrade_tenants(fleet_, Selection(skip=("t12_dies",)), options=RunOptions(jobs=2))
        assert again.exit_code == 0, again.final()
        assert [live(fleet_, slug) for slug in SLUGS] == ["0004"] * len(SLUGS)
    finally:
        fleet_.close()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"], indirect=True)
def test_a_batch_whose_worker_dies_has_each_tenant_read_back(settings, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                            tenancy: Tenancy) -> None:
    # One batch: t11 commits, t12_dies kills the worker, t13 never starts. The batch's results die
    # with the worker; each tenant's own version says what happened to it.
    make_tenants(tenancy, ["t11", "t12_dies", "t13"])
    fleet_ = Tenancy(with_chain(settings, write_chain(tmp_path, KILLS_ITS_WORKER)))
    pool = WorkerPool(fleet_)
    try:
        params = {"target": "0004", "from": "0003"}
        slugs = ("t11", "t12_dies", "t13")
        future = pool.submit(1, [(fleet_.settings, slug, None, "migrate", params) for slug in slugs])
        wait([future])
        outcomes = [result for result, _ in pool.results(future)]
        assert [(r.slug, r.status, r.to_revision) for r in outcomes] == [
            ("t11", "ok", "0004"), ("t12_dies", "failed", None), ("t13", "failed", None)]
        assert "committed; then a worker process died" in outcomes[0].detail
        assert all(r.error.startswith(f"tenant {r.slug!r}: a worker process died (") and
                   r.error.endswith(") before it committed; the tenant is unchanged") for r in outcomes[1:]), outcomes
        assert [live(fleet_, slug) for slug in ("t11", "t12_dies", "t13")] == ["0004", "0003", "0003"]
    finally:
        pool.close()
        fleet_.close()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"], indirect=True)
def test_a_batch_of_creations_whose_worker_dies_has_each_tenant_read_back(settings, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                          tenancy: Tenancy) -> None:
    # t11 is created, t12_dies kills the worker while its chain runs, t13 never starts: the registry
    # says which is which (an abandoned row is finished by creating the tenant again).
    fleet_ = Tenancy(with_chain(settings, write_chain(tmp_path, KILLS_ITS_WORKER)))
    pool = WorkerPool(fleet_)
    try:
        slugs = ("t11", "t12_dies", "t13")
        future = pool.submit(1, [(fleet_.settings, slug, None, "create", {}) for slug in slugs])
        wait([future])
        outcomes = [result for result, _ in pool.results(future)]
        assert [(r.slug, r.status, r.to_revision) for r in outcomes] == [
            ("t11", "ok", "0004"), ("t12_dies", "failed", None), ("t13", "failed", None)]
        assert outcomes[0].detail.startswith("created; then a worker process died (")
        assert outcomes[1].error.endswith("while it was created; it is left provisioning: "
                                          "'manage.py create-tenant t12_dies' finishes it"), outcomes[1].error
        assert outcomes[2].error.endswith("before it was created; nothing of it is left"), outcomes[2].error
        assert {t.slug: t.status for t in fleet_.registry.all()} == {"t11": "active", "t12_dies": "provisioning"}
        assert live(fleet_, "t11") == "0004"
    finally:
        pool.close()
        fleet_.close()


def test_a_task_or_rehearsal_read_back_claims_only_what_is_known(tenancy: Tenancy) -> None:  # type: ignore[no-untyped-def]
    # A task leaves no mark in the tenant: "rolled back" could be a lie (an UPDATE that committed, then
    # run again by an operator who believed it). A rehearsal is always rolled back.
    make_tenants(tenancy, ["t1"])
    died = "a worker process died (test)"
    task = read_back_result(tenancy.settings, "t1", None, "task:sql", {}, died)
    assert task.status == "failed" and "whether it committed is not known" in task.error
    rehearsal = read_back_result(tenancy.settings, "t1", None, "migrate", {"rehearse": True, "from": "0003"}, died)
    assert rehearsal.status == "failed" and rehearsal.error.endswith("a rehearsal is always rolled back")


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_read_back_waits_for_the_dead_workers_transaction_to_end(tenancy: Tenancy) -> None:  # type: ignore[no-untyped-def]
    # A session still holds the tenant's lock with its commit under way (its client is gone): the
    # version read at once would be the old one; the read-back waits for the lock, and so for the commit.
    make_tenants(tenancy, ["slow_commit", "stuck"])
    storage, params = tenancy.storage("slow_commit"), {"target": "0004", "from": "0003"}
    conn = psycopg2.connect(make_url(tenancy.settings.control_url).render_as_string(hide_password=False))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("slow_commit"),))
            cur.execute("UPDATE " + quoted_schema("slow_commit") + ".alembic_version SET version_num = '0004'")
        committer = threading.Timer(0.5, conn.commit)
        committer.start()
        result = migration_read_back(storage, params, "a worker process died", wait_s=10)
        committer.join()
        assert (result.status, result.to_revision) == ("ok", "0004"), result
        with conn.cursor() as cur:  # held past the wait: the tenant's end is unknown, so not ok
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("stuck"),))
        result = migration_read_back(tenancy.storage("stuck"), params, "a worker process died", wait_s=0.3)
        assert result.status == "failed" and "could not be read back" in result.error, result
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"], indirect=True)
def test_a_bound_per_server_still_sends_batches_and_holds(settings, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                          tenancy: Tenancy, sizes: list[int]) -> None:
    # A batch holds one slot of its server: with --jobs-per-server 1 each tenant used to take a slot
    # of its own, so a batch never held more than one and every tenant waited on a round trip.
    make_tenants(tenancy, SLUGS)
    fleet_ = Tenancy(with_chain(settings, write_chain(tmp_path, ADDS_A_COLUMN)))
    try:
        report = upgrade_tenants(fleet_, Selection(), options=RunOptions(jobs=2, jobs_per_server=1))
        assert report.exit_code == 0, {s: (r.status, r.error) for s, r in report.final().items() if r.status != "ok"}
        assert max(sizes) > 1, f"no batch of several tenants was sent: {sizes}"
        assert [live(fleet_, slug) for slug in SLUGS] == ["0004"] * len(SLUGS)
        spans = list(intervals(fleet_.control_engine, report.run_id).values())
        assert len(spans) == len(SLUGS) and max_overlap(spans) == 1  # one tenant of the one server at a time
    finally:
        fleet_.close()
