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
    # A run keeps every registry row and plan item to its end: values most tenants repeat are one object.
    make_tenants(tenancy, ["one", "two", "three"])
    rows = tenancy.registry.all()
    assert [row.status for row in rows] == ["active"] * 3 and rows[0].status is rows[1].status is rows[2].status
    plan = plan_migration(tenancy, rows, tenancy.head())
    assert {item.status for item in plan.items} == {"at-target"}
    assert plan.items[0].current == tenancy.head() and plan.items[0].current is plan.items[2].current
