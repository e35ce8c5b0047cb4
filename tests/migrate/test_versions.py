"""Bulk reads of tenants' revisions: one query per PostgreSQL database, missing storage reported."""

import pytest
from sqlalchemy import event, text

from tenants.core.tenancy import Tenancy
from tenants.migrate import versions
from tenants.migrate.migrator import migrate_tenant
from tenants.migrate.versions import read_versions
from tests.fleet_support import make_tenants


def test_reads_every_tenant_in_bulk(tenancy: Tenancy, backend: str) -> None:
    make_tenants(tenancy, ["acme", "beta", "gone", "empty"])
    tenancy.storage("gone").drop()
    with tenancy.storage("empty").begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    statements: list[str] = []
    event.listen(tenancy.control_engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *args: statements.append(sql))
    reads = read_versions(tenancy, tenancy.registry.all())
    assert reads["acme"].revision == reads["beta"].revision == "0003"
    assert reads["empty"].revision is None and reads["empty"].error is None
    assert reads["gone"].error and "missing" in reads["gone"].error
    assert reads["gone"].error.endswith("tenant_gone is missing") or backend == "sqlite"
    assert reads["acme"] is reads["beta"]  # one read per revision, not one per tenant (memory at 10,000)
    if backend == "postgresql":
        assert len([s for s in statements if "alembic_version" in s]) == 2  # the catalogue, then one UNION ALL


@pytest.mark.parametrize("change", ["dropped", "replaced"])
def test_a_schema_changed_between_the_catalogue_and_the_read_is_read_alone(tenancy: Tenancy, backend: str,
                                                                           change: str, monkeypatch) -> None:
    if backend != "postgresql":
        pytest.skip("one bulk statement per database is PostgreSQL's")
    make_tenants(tenancy, ["acme", "beta", "gone"])
    monkeypatch.setattr(versions, "CHUNK", 2)  # several chunks with three tenants
    done: list[bool] = []

    def meddle(conn, cursor, sql, *args) -> None:  # type: ignore[no-untyped-def]
        if "tableoid" in sql and not done:  # after the catalogue read, before the first bulk read
            done.append(True)
            storage = tenancy.storage("gone")
            storage.drop()
            if change == "replaced":  # same name, another table oid
                storage.create()
                migrate_tenant(storage, tenancy.scripts, "0002")

    event.listen(tenancy.control_engine, "before_cursor_execute", meddle)
    reads = read_versions(tenancy, tenancy.registry.all())
    assert done and reads["acme"].revision == reads["beta"].revision == "0003"
    if change == "dropped":
        assert reads["gone"].revision is None and "does not exist" in reads["gone"].error
    else:
        assert (reads["gone"].revision, reads["gone"].error) == ("0002", None)
