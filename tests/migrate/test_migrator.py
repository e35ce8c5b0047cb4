"""One tenant along the chain: at head after create, --to and back, atomic on failure."""

from dataclasses import replace

import pytest
from sqlalchemy import inspect, select

from portal.models import Product
from tenants.core.binding import tenant_session
from tenants.core.errors import InvalidUsage
from tenants.core.ledger import ledger_versions
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.fleet.options import RunOptions
from tenants.fleet.single import move_tenant
from tenants.migrate.errors import InvalidRevision
from tenants.migrate.migrator import current_revision
from tests.chains import chain_with
from tests.factories import make_product


def tables(storage) -> set[str]:
    with storage.begin() as conn:
        return set(inspect(conn).get_table_names(schema=storage.version_table_schema)) - {"alembic_version"}


def test_create_brings_tenant_to_head_and_ledger_mirrors_it(tenancy):
    create_tenant(tenancy, "acme")
    storage = tenancy.storage("acme")
    assert current_revision(storage) == tenancy.head() == "0003"
    assert ledger_versions(tenancy.control_engine)["acme"] == "0003"
    assert tables(storage) == {"users", "roles", "users_roles", "products"}


def test_to_a_middle_revision_and_back(tenancy):
    create_tenant(tenancy, "acme")
    storage = tenancy.storage("acme")
    down = move_tenant(tenancy, "acme", "0001", downgrade=True, options=RunOptions(allow_destructive=True))
    assert down.exit_code == 0, down.to_dict()
    assert current_revision(storage) == "0001"
    assert tables(storage) == {"users", "roles", "users_roles"}
    assert ledger_versions(tenancy.control_engine)["acme"] == "0001"
    [result] = move_tenant(tenancy, "acme", "0002").results
    assert (result.status, result.from_revision, result.to_revision) == ("ok", "0001", "0002")
    assert result.detail.startswith("applied 0002")
    assert "products" in tables(storage)
    move_tenant(tenancy, "acme", "head")
    assert current_revision(storage) == ledger_versions(tenancy.control_engine)["acme"] == "0003"


def test_upgrading_to_an_older_revision_is_refused(tenancy):
    create_tenant(tenancy, "acme")
    with pytest.raises(InvalidUsage, match="downgrade"):
        move_tenant(tenancy, "acme", "0001")
    assert current_revision(tenancy.storage("acme")) == "0003"


@pytest.mark.parametrize("target", ["zzz", "00", "", "0001:0002"])
def test_unknown_targets_are_refused_before_anything_is_recorded(tenancy, target):
    create_tenant(tenancy, "acme")
    with pytest.raises(InvalidRevision):
        move_tenant(tenancy, "acme", target)


FAILING_HALF_WAY = {
    "0004": ("0003", "op.create_table('notes', sa.Column('id', sa.Integer, primary_key=True))\n"
                     "op.add_column('products', sa.Column('legacy', sa.Integer))"),
    "0005": ("0004", "op.execute('INSERT INTO no_such_table VALUES (1)')"),
}


def test_a_failing_revision_leaves_the_tenant_exactly_where_it_was(tenancy, tmp_path):
    create_tenant(tenancy, "acme")
    storage = tenancy.storage("acme")
    make_product(storage, sku="KEEP-1")
    broken = Tenancy(replace(tenancy.settings, revision_dir=chain_with(tmp_path, FAILING_HALF_WAY)))
    try:
        report = move_tenant(broken, "acme", "head")
        [result] = report.results
        assert report.exit_code == 1 and result.status == "failed"
        assert "acme" in result.error and "0005" in result.error and "no_such_table" in result.error
    finally:
        broken.close()
    assert current_revision(storage) == "0003"
    assert "notes" not in tables(storage)  # 0004 ran, then rolled back with 0005
    with storage.begin() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("products", schema=storage.version_table_schema)}
    assert "legacy" not in columns
    with tenant_session(storage) as session:
        assert session.scalars(select(Product.sku)).all() == ["KEEP-1"]
    assert ledger_versions(tenancy.control_engine)["acme"] == "0003"
