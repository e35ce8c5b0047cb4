"""The dashboard at scale: pages of tenants, counts from the stats table (not live), sane pages for bad input."""

import re

import pytest

from tenants.core.ledger import TenantResult, record_result, start_run
from tenants.fleet.create import create_tenant
from tenants.migrate.lifecycle import drop_tenant
from tests.console_support import Console, record_versions, register_tenants


def row_of(page: str, slug: str) -> str:
    return page.split(f'<tr data-tenant="{slug}"', 1)[1].split("</tr>", 1)[0]


def test_counts_come_from_the_stats_table_with_their_time(console: Console, root) -> None:
    before = root.get("/admin/").get_data(as_text=True)
    assert "no stats yet" in row_of(before, console.a)
    console.refresh_stats()
    console.add_product(console.a, "Uncounted", "UNC-1")  # live data moves on; the page shows what was taken
    page = root.get("/admin/").get_data(as_text=True)
    row = row_of(page, console.a)
    assert '<td data-count="products">2</td>' in row and '<td data-count="users">2</td>' in row
    assert re.search(r"<td data-taken-at>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td>", row)
    assert '<td data-count="products">4</td>' in row_of(page, console.b)


def test_a_recreated_tenant_does_not_show_the_old_tenants_stats(console: Console, root) -> None:
    console.refresh_stats()
    drop_tenant(console.tenancy, console.b)
    create_tenant(console.tenancy, console.b)
    assert "no stats yet" in row_of(root.get("/admin/").get_data(as_text=True), console.b)
    console.refresh_stats()
    assert '<td data-count="products">0</td>' in row_of(root.get("/admin/").get_data(as_text=True), console.b)


def test_the_dashboard_is_paged(console: Console, root) -> None:
    register_tenants(console.tenancy.control_engine, [f"bulk_{i:03d}" for i in range(60)])
    first = root.get("/admin/").get_data(as_text=True)
    assert first.count("<tr data-tenant=") == 20 and "page 1 of 4 (62 tenants)" in first
    last = root.get("/admin/?page=4").get_data(as_text=True)
    assert last.count("<tr data-tenant=") == 2 and "page 4 of 4" in last
    assert "no stats yet" in row_of(last, "bulk_059") and "no stats yet" in row_of(first, "bulk_000")


@pytest.mark.parametrize(("asked", "shown"), [("-1", 1), ("0", 1), ("abc", 1), ("99999999999999999999", 4),
                                              ("2.5", 1), ("", 1), ("1e9", 1), ("%00", 1)])
def test_bad_page_numbers_get_a_sane_page(console: Console, root, asked: str, shown: int) -> None:
    register_tenants(console.tenancy.control_engine, [f"bulk_{i:03d}" for i in range(60)])
    response = root.get(f"/admin/?page={asked}")
    assert response.status_code == 200
    assert f"page {shown} of 4" in response.get_data(as_text=True)


def test_limited_staff_see_their_tenants_and_granted_counts_only(console: Console, viewer, acme_admin) -> None:
    register_tenants(console.tenancy.control_engine, [f"bulk_{i:03d}" for i in range(60)])
    console.refresh_stats(console.a, console.b)  # the bulk rows have no storage to count
    for client in (viewer, acme_admin):
        page = client.get("/admin/?page=2").get_data(as_text=True)  # clamped to their one page
        assert page.count("<tr data-tenant=") == 1 and f'data-tenant="{console.a}"' in page
        assert "bulk_" not in page and console.b not in page
    row = row_of(viewer.get("/admin/").get_data(as_text=True), console.a)
    assert 'data-count="products">2<' in row and 'data-count="users"' not in row


def test_the_dashboard_opens_no_tenant(console: Console, root) -> None:
    console.refresh_stats()
    for slug in (console.a, console.b):  # both tenants' storage gone: the page does not notice
        console.tenancy.storage(slug).drop()
    page = root.get("/admin/")
    assert page.status_code == 200 and '<td data-count="products">2</td>' in row_of(page.get_data(as_text=True),
                                                                                    console.a)


def test_needs_attention_counts_every_kind_of_tenant_behind_head(console: Console, root) -> None:
    engine = console.tenancy.control_engine
    old, unrecorded, nameless, current = ([f"{p}_{i:02d}" for i in range(n)]
                                         for p, n in (("old", 12), ("unrec", 9), ("none", 4), ("ok", 30)))
    register_tenants(engine, old + unrecorded + nameless + current)
    record_versions(engine, old, "0001")
    record_versions(engine, nameless, None)
    record_versions(engine, current, console.tenancy.head())
    attention = root.get("/admin/").get_data(as_text=True).split('id="attention"', 1)[1].split("</div>", 1)[0]
    shown = sorted(old + unrecorded + nameless)[:20]
    assert [line.split(":")[0].strip() for line in attention.split("<li>")[1:21]] == shown
    assert "and 5 more tenants behind head" in attention  # 12 + 9 + 4 = 25, exactly
    assert "old_00: at 0001" in attention and "none_00: at no recorded revision" in attention
    assert "ok_" not in attention and f"{console.a}:" not in attention


def test_a_failed_migration_needs_attention_until_a_later_migration(console: Console, root) -> None:
    engine = console.tenancy.control_engine
    failed = start_run(engine, "upgrade", None)
    record_result(engine, failed, TenantResult(console.a, "failed", "0002", "0002", error="lock timeout"))
    record_result(engine, failed, TenantResult(console.b, "failed", "0002", "0002", error="boom"))
    stats = start_run(engine, "stats", None)  # a maintenance task after it hides nothing
    record_result(engine, stats, TenantResult(console.a, "ok"))
    retried = start_run(engine, "upgrade-tenant", None)
    record_result(engine, retried, TenantResult(console.b, "ok", "0002", console.tenancy.head()))
    attention = root.get("/admin/").get_data(as_text=True).split('id="attention"', 1)[1].split("</div>", 1)[0]
    assert f"{console.a}: last upgrade failed: lock timeout" in attention
    assert f"{console.b}: last upgrade" not in attention
