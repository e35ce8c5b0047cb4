"""The console's "Upgrade selected to head" goes through the same gate as the CLI."""

from portal.admin.tenant_actions import upgrade_selected
from tenants.migrate.migrator import current_revision
from tests.fleet.test_single import names, runs
from tests.safety.test_gate import DROP_NAME, fleet


def test_a_blocked_revision_is_refused_from_the_console_and_nothing_moves(settings, tmp_path):
    tenancy, _ = fleet(settings, tmp_path, DROP_NAME)
    before = runs(tenancy)
    try:
        reports = upgrade_selected(tenancy, ["acme", "globex"], started_by="console:ops@example.com")
        assert [(r.slug, r.ok) for r in reports] == [("acme", False), ("globex", False)]
        assert all("drop-column" in r.message for r in reports), reports
        for slug in ("acme", "globex"):
            assert current_revision(tenancy.storage(slug)) == "0003"
            assert names(tenancy, slug) == [f"{slug} anvil"]
        assert runs(tenancy) == before
    finally:
        tenancy.close()
