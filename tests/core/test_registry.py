"""The registry's reads, on both dialects."""

from tests.fleet_support import make_tenants


def test_find_many_returns_the_existing_ones_of_more_slugs_than_one_statement_takes(tenancy):  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["first", "last"])
    asked = ["first", *(f"missing_{i}" for i in range(2000)), "last"]
    found = tenancy.registry.find_many(asked)
    assert sorted(found) == ["first", "last"] and found["last"].status == "active"
    assert tenancy.registry.find_many([]) == {}
