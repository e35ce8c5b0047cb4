"""The ledger's batched writes: every result recorded, each tenant's entry moved only when it moved."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from tenants.core.clock import utcnow
from tenants.core.control_schema import migration_runs, tenant_results, tenant_versions, tenants
from tenants.core.ledger import (
    TenantResult,
    correct_ledger,
    last_results,
    ledger_versions,
    record_result,
    record_results,
    set_version,
    start_run,
)
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control, upgrade_control
from tenants.migrate.driver import run_steps, steps_between


def recorded(tenancy: Tenancy, run_id: str) -> list[tuple]:
    c = tenant_results.c
    with tenancy.control_engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(c.tenant_slug, c.status, c.from_revision, c.to_revision)
                                               .where(c.run_id == run_id).order_by(c.id))]


def test_a_batch_records_every_result_and_moves_only_what_moved(tenancy: Tenancy) -> None:
    ensure_control(tenancy)
    engine = tenancy.control_engine
    with engine.begin() as conn:
        set_version(conn, "failed1", "0002", None)
        set_version(conn, "partial", "0001", None)
    run_id = start_run(engine, "upgrade", "0003")
    began = utcnow() - timedelta(seconds=1)
    batch = [
        (TenantResult("fresh", "ok", None, "0003", 12.0, None, "applied"), began),
        (TenantResult("failed1", "failed", "0002", None, 3.0, "tenant 'failed1': boom", "Traceback"), began),
        # A retried tenant appears twice in one batch: both rows are kept, its last result moves it.
        (TenantResult("retried", "busy", "0002", None, 0.0, "locked"), began),
        (TenantResult("retried", "ok", "0002", "0003", 8.0), began),
        # A revision that ran on its own committed before the next one failed: the entry follows it.
        (TenantResult("partial", "failed", "0001", "0002", 5.0, "tenant 'partial': 0003 failed"), began),
    ]
    record_results(engine, run_id, batch)
    record_results(engine, run_id, [])  # nothing to write: no transaction, no error
    assert recorded(tenancy, run_id) == [("fresh", "ok", None, "0003"), ("failed1", "failed", "0002", None),
                                         ("retried", "busy", "0002", None), ("retried", "ok", "0002", "0003"),
                                         ("partial", "failed", "0001", "0002")]
    versions = ledger_versions(engine)
    assert {slug: versions.get(slug) for slug in ("fresh", "failed1", "retried", "partial")} == {
        "fresh": "0003", "failed1": "0002", "retried": "0003", "partial": "0002"}
    # A second batch for tenants already in the ledger updates them in place (the upsert's other arm).
    again = start_run(engine, "downgrade", None)
    record_results(engine, again, [(TenantResult("fresh", "ok", "0003", None, 4.0), began),
                                   (TenantResult("retried", "ok", "0003", "0002", 4.0), began)])
    versions = ledger_versions(engine)
    assert (versions["fresh"], versions["retried"]) == (None, "0002")


def test_a_full_batch_moves_every_entry(tenancy: Tenancy) -> None:
    # A full ResultBuffer (500) goes out as batched multi-row upserts: none of its entries is lost or mixed up.
    ensure_control(tenancy)
    engine = tenancy.control_engine
    n = 517
    slugs = [f"t{i:04d}" for i in range(n)]
    with engine.begin() as conn:
        for slug in slugs[::2]:  # every other tenant is in the ledger already: the upsert's update arm
            set_version(conn, slug, "0002", None)
    run_id = start_run(engine, "upgrade", "0003")
    began = utcnow()
    batch = [(TenantResult(slug, "failed", "0002", None, 1.0, "boom") if i % 7 == 0
              else TenantResult(slug, "ok", "0002", "0003", 1.0), began) for i, slug in enumerate(slugs)]
    runs: list[int] = []  # per call to the driver: how many times it runs the statement (a list of rows: once each)

    def listener(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        rows = executemany and isinstance(parameters, list | tuple) and isinstance(parameters[0], dict | list | tuple)
        runs.append(len(parameters) if rows else 1)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        record_results(engine, run_id, batch)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    if engine.dialect.name == "postgresql":  # a round trip per statement (SQLite's driver loops in-process)
        assert sum(runs) < 20, runs  # batched: a handful of statements for the whole batch, not one per tenant
    versions = ledger_versions(engine)
    assert {slug: versions.get(slug) for slug in slugs} == {
        slug: ("0003" if i % 7 else ("0002" if i % 2 == 0 else None)) for i, slug in enumerate(slugs)}
    assert len(recorded(tenancy, run_id)) == n
    with engine.connect() as conn:
        moved_by = conn.execute(select(tenant_versions.c.run_id).where(tenant_versions.c.revision == "0003")).scalars()
        assert set(moved_by) == {run_id}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite writers take the file's lock whole
def test_two_writers_of_overlapping_batches_never_deadlock(tenancy: Tenancy) -> None:
    # Results arrive in any order; the upsert locks ledger rows in slug order, so two writers whose
    # batches share tenants wait for each other instead of deadlocking (reproduced without the order).
    engine = tenancy.control_engine
    slugs = [f"t{i:04d}" for i in range(300)]
    runs = [start_run(engine, "upgrade", "0003") for _ in range(2)]
    began = utcnow()
    batches = [[(TenantResult(slug, "ok", "0002", "0003", 1.0), began) for slug in order]
               for order in (slugs, slugs[::-1])]
    errors: list[Exception] = []

    def write(i: int) -> None:
        try:
            for _ in range(40):
                record_results(engine, runs[i], batches[i])
        except Exception as e:  # a deadlock arrives here as OperationalError
            errors.append(e)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert not errors, errors[0]
    assert {slug: version for slug, version in ledger_versions(engine).items() if slug in slugs} == dict.fromkeys(
        slugs, "0003")


def test_correct_ledger_sets_only_the_entries_that_disagree(tenancy: Tenancy) -> None:
    ensure_control(tenancy)
    engine = tenancy.control_engine
    with engine.begin() as conn:
        set_version(conn, "right", "0003", None)
        set_version(conn, "behind", "0001", None)
    stale = correct_ledger(engine, {"right": "0003", "behind": "0003", "unrecorded": "0003", "at_base": None})
    assert sorted(stale) == ["at_base", "behind", "unrecorded"]
    versions = ledger_versions(engine)
    assert {slug: versions[slug] for slug in ("right", "behind", "unrecorded", "at_base")} == {
        "right": "0003", "behind": "0003", "unrecorded": "0003", "at_base": None}
    assert correct_ledger(engine, {"right": "0003", "behind": "0003"}) == []


def result(slug: str, status: str, to: str | None = "0003") -> list[tuple[TenantResult, object]]:
    return [(TenantResult(slug, status, "0002", to if status == "ok" else None, 1.0), utcnow())]


def test_last_results_follow_many_runs_and_keep_migrations_apart_from_tasks(tenancy: Tenancy) -> None:
    ensure_control(tenancy)
    engine = tenancy.control_engine
    for slug in ("acme", "globex"):
        tenancy.registry.add(slug, slug, None)
    # Many runs over time: acme fails a migration, then succeeds; maintenance runs come after,
    # the last of which fails; globex only ever ran a maintenance task.
    ids = {}
    for kind, slug, status in [("upgrade", "acme", "failed"), ("analyze", "acme", "ok"), ("upgrade", "acme", "ok"),
                               *[("vacuum", "acme", "ok")] * 5, ("stats", "acme", "failed"),
                               ("rehearse-upgrade", "globex", "failed"), ("analyze", "globex", "ok")]:
        run_id = start_run(engine, kind, None)
        record_results(engine, run_id, result(slug, status))
        ids[(kind, slug)] = run_id
    migrations, tasks, every = (last_results(engine, migrations=m) for m in (True, False, None))
    assert (migrations["acme"]["status"], migrations["acme"]["kind"]) == ("ok", "upgrade")
    assert migrations["acme"]["run_id"] == ids[("upgrade", "acme")]
    assert (tasks["acme"]["status"], tasks["acme"]["kind"]) == ("failed", "stats")
    assert (every["acme"]["status"], every["acme"]["kind"]) == ("failed", "stats")
    assert "globex" not in migrations  # a rehearsal is no migration
    assert (tasks["globex"]["kind"], every["globex"]["kind"]) == ("analyze", "analyze")
    # A single tenant's command (record_result) moves the same pointer as a fleet run's batch.
    single = start_run(engine, "upgrade-tenant", "0003")
    record_result(engine, single, TenantResult("acme", "failed", "0003", None, 2.0, "boom"))
    assert last_results(engine, migrations=True)["acme"]["run_id"] == single
    assert last_results(engine, migrations=False)["acme"]["kind"] == "stats"


def test_a_batch_with_a_retried_tenant_points_at_its_last_result(tenancy: Tenancy) -> None:
    ensure_control(tenancy)
    engine = tenancy.control_engine
    tenancy.registry.add("retried", "retried", None)
    run_id = start_run(engine, "upgrade", "0003")
    record_results(engine, run_id, [*result("retried", "busy"), *result("retried", "ok")])
    assert last_results(engine)["retried"]["status"] == "ok"


def test_a_recreated_slug_does_not_inherit_the_old_tenants_results(tenancy: Tenancy) -> None:
    ensure_control(tenancy)
    engine = tenancy.control_engine
    tenancy.registry.add("acme", "Old Acme", None)
    for kind in ("upgrade", "analyze"):
        record_results(engine, start_run(engine, kind, None), result("acme", "failed"))
    assert last_results(engine)["acme"]["status"] == "failed"
    tenancy.registry.remove("acme")
    tenancy.registry.add("acme", "New Acme", None)
    assert last_results(engine) == {} and last_results(engine, migrations=True) == {}
    # Results recorded for the slug while no tenant held it belong to nobody either.
    tenancy.registry.remove("acme")
    record_results(engine, start_run(engine, "upgrade", None), result("acme", "failed"))
    tenancy.registry.add("acme", "Newer Acme", None)
    assert last_results(engine) == {}
    record_results(engine, start_run(engine, "create-tenant", None), result("acme", "ok"))
    assert last_results(engine, migrations=True)["acme"]["status"] == "ok"


@pytest.mark.empty_control  # the control plane is built up to c600 here, filled, then upgraded
def test_c700_fills_the_latest_results_from_the_history_of_the_current_tenants(settings) -> None:
    tenancy = Tenancy(settings)
    engine = tenancy.control_engine
    opts = {"transactional_ddl": True, "render_as_batch": engine.dialect.name == "sqlite"}
    with engine.begin() as conn:
        run_steps(conn, steps_between(tenancy.control_scripts, None, "c600"), opts)
    day = timedelta(days=1)
    t0 = utcnow() - 10 * day
    with engine.begin() as conn:
        conn.execute(tenants.insert(), [
            # acme was dropped and created again on day 5: only what finished after that is its own.
            {"slug": "acme", "display_name": "acme", "status": "active", "created_at": t0 + 5 * day,
             "updated_at": t0, "account_key": "a" * 32},
            {"slug": "globex", "display_name": "globex", "status": "active", "created_at": t0,
             "updated_at": t0, "account_key": "g" * 32}])
        for day_no, kind in enumerate(("upgrade", "analyze", "upgrade", "vacuum", "upgrade", "analyze")):
            conn.execute(migration_runs.insert().values(
                id=f"run{day_no}", kind=kind, started_by="test", started_at=t0 + day_no * day, status="ok"))
        history = [("run0", "acme", "failed", 0), ("run1", "acme", "failed", 1), ("run0", "globex", "ok", 0),
                   ("run2", "globex", "failed", 2), ("run3", "globex", "ok", 3), ("run4", "globex", "ok", 4),
                   ("run4", "gone", "ok", 4), ("run5", "acme", "ok", 6)]
        conn.execute(tenant_results.insert(), [
            {"run_id": run, "tenant_slug": slug, "status": status, "started_at": t0 + d * day, "duration_ms": 5.0}
            for run, slug, status, d in history])
    assert upgrade_control(engine, tenancy.control_scripts)[1] == tenancy.control_scripts.get_current_head()
    migrations, tasks = last_results(engine, migrations=True), last_results(engine, migrations=False)
    assert "acme" not in migrations  # the old acme's failed upgrade is not the new one's
    assert (tasks["acme"]["run_id"], tasks["acme"]["status"]) == ("run5", "ok")
    assert (migrations["globex"]["run_id"], tasks["globex"]["run_id"]) == ("run4", "run3")
    assert set(last_results(engine)) == {"acme", "globex"}
    tenancy.close()
