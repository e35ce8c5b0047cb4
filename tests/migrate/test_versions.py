"""Bulk reads of tenants' revisions: one query per PostgreSQL database, missing storage reported."""

from sqlalchemy import event, text

from tenants.core.tenancy import Tenancy
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
    if backend == "postgresql":
        assert len([s for s in statements if "alembic_version" in s]) == 2  # the catalogue, then one UNION ALL
