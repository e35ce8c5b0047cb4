"""Results reach the ledger in batches across tenants; a lost batch is corrected by the next run."""

import pytest
from sqlalchemy import event, select

from tenants.core.control_schema import tenant_results
from tenants.core.ledger import ledger_versions
from tenants.core.tenancy import Tenancy
from tenants.fleet import recorder
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import upgrade_tenants
from tenants.migrate.selection import Selection
from tests.fleet_support import live, make_tenants, rows, with_chain, write_chain

ADD_NOTE = {"0004": ("0003", "op.add_column('products', sa.Column('note', sa.Text()))",
                     "op.drop_column('products', 'note')")}
SLUGS = ["r1", "r2", "r3", "r4", "r5"]


def result_inserts(tenancy: Tenancy, run: callable) -> tuple[object, int]:  # type: ignore[valid-type]
    """Run `run()` and count the INSERTs into tenant_results sent to the control database meanwhile."""
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO TENANT_RESULTS"):
            seen.append(statement)

    engines = [tenancy.engines.get(tenancy.settings.control_url, durable_commits=False), tenancy.control_engine]
    for engine in set(engines):
        event.listen(engine, "before_cursor_execute", count)
    try:
        return run(), len(seen)
    finally:
        for engine in set(engines):
            event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("jobs", [1, 2])
def test_results_of_many_tenants_go_out_together(tenancy: Tenancy, settings, tmp_path, jobs: int,  # type: ignore[no-untyped-def]
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    make_tenants(tenancy, SLUGS)
    fleet = Tenancy(with_chain(settings, write_chain(tmp_path, ADD_NOTE)))
    # No interval falls due during the run: one batch, written before the run is closed.
    monkeypatch.setattr(recorder.ResultBuffer, "EVERY", 3600.0)
    try:
        options = RunOptions(jobs=jobs)
        report, inserts = result_inserts(fleet, lambda: upgrade_tenants(fleet, Selection(), options=options))
        assert report.exit_code == 0 and inserts == 1
        assert ledger_versions(fleet.control_engine) == dict.fromkeys(SLUGS, "0004")
        assert {s: live(fleet, s) for s in SLUGS} == dict.fromkeys(SLUGS, "0004")
        with fleet.control_engine.connect() as conn:
            slugs = conn.execute(select(tenant_results.c.tenant_slug).where(tenant_results.c.run_id == report.run_id)
                                 .order_by(tenant_results.c.id)).scalars().all()
        assert sorted(slugs) == SLUGS
        assert all(rows(fleet, s, "SELECT sku, stock FROM products") == [("W-1", 5)] for s in SLUGS)
    finally:
        fleet.close()


def test_a_lost_batch_only_delays_the_ledger(tenancy: Tenancy, settings, tmp_path,  # type: ignore[no-untyped-def]
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    make_tenants(tenancy, SLUGS)
    fleet = Tenancy(with_chain(settings, write_chain(tmp_path, ADD_NOTE)))
    try:
        # The runner dies between the tenants' commits and its ledger write, as a SIGKILL would.
        with monkeypatch.context() as patch:
            patch.setattr(recorder, "record_results", lambda engine, run_id, batch: None)
            first = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=1))
        assert first.exit_code == 0 and all(live(fleet, s) == "0004" for s in SLUGS)
        assert set(ledger_versions(fleet.control_engine).values()) == {"0003"}  # behind the truth, not ahead
        again = upgrade_tenants(fleet, Selection())
        assert again.exit_code == 0 and not again.results  # nothing migrated twice
        assert any("ledger corrected for 5 tenants" in note for note in again.notes)
        assert ledger_versions(fleet.control_engine) == dict.fromkeys(SLUGS, "0004")
    finally:
        fleet.close()
