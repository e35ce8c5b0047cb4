"""The ledger's batched writes: every result recorded, each tenant's entry moved only when it moved."""

from datetime import timedelta

from sqlalchemy import select

from tenants.core.clock import utcnow
from tenants.core.control_schema import tenant_results
from tenants.core.ledger import TenantResult, correct_ledger, ledger_versions, record_results, set_version, start_run
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control


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
