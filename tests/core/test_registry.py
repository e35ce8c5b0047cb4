"""The registry's reads, on both dialects."""

from tenants.migrate.plan import plan_migration
from tests.fleet_support import make_tenants


def test_find_many_returns_the_existing_ones_of_more_slugs_than_one_statement_takes(tenancy):  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["first", "last"])
    asked = ["first", *(f"missing_{i}" for i in range(2000)), "last"]
    found = tenancy.registry.find_many(asked)
    assert sorted(found) == ["first", "last"] and found["last"].status == "active"
    assert tenancy.registry.find_many([]) == {}


def test_a_fleet_holds_one_copy_of_each_repeated_value(tenancy):  # type: ignore[no-untyped-def]
    # Values most tenants of a page repeat are one object: in its registry rows, and in its plan read back.
    make_tenants(tenancy, ["one", "two", "three"])
    rows = tenancy.registry.all()
    assert [row.status for row in rows] == ["active"] * 3 and rows[0].status is rows[1].status is rows[2].status
    items = list(plan_migration(tenancy, [rows], tenancy.head()).items)
    assert {item.status for item in items} == {"at-target"}
    assert items[0].current == tenancy.head() and items[0].current is items[2].current
