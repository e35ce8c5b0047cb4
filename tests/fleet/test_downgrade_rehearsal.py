"""Downgrade rehearsal: each tenant's downgrade runs in its transaction and rolls back; nothing changes.

The chain's 0004 takes back cleanly only where every product has stock below 1000 (its downgrade
adds that CHECK): a tenant with more fails, and under --rehearse-first no tenant moves.
"""

import json
import threading

from sqlalchemy import text

from tenants.core.ledger import last_results, ledger_versions
from tenants.core.tenancy import Tenancy
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import downgrade_tenants, upgrade_tenants
from tenants.migrate.selection import Selection
from tests.conftest import run_manage
from tests.fleet.test_runner import chained  # noqa: F401  (the fixture)
from tests.fleet_support import live, make_tenants, rows, write_chain

# Upgrading is harmless; taking 0004 back adds a CHECK that a tenant's own rows can break.
DOWN_CHAIN = {
    "0004": ("0003", """
        op.create_index("ix_products_name", "products", ["name"])
        """, """
        op.drop_index("ix_products_name", table_name="products")
        with op.batch_alter_table("products") as batch:
            batch.create_check_constraint("stock_below_1000", "stock < 1000")
        """),
}
TABLES = ("roles", "users", "users_roles", "products")


def _fleet(tenancy: Tenancy, chained, slugs: list[str], bad: list[str]) -> Tenancy:  # noqa: F811
    """Tenants full of rows at 0004 (every table, association table included); `bad` ones with stock 5000."""
    make_tenants(tenancy, slugs)
    make_tenants(tenancy, bad, stock=5000)
    fleet = chained(DOWN_CHAIN)
    assert upgrade_tenants(fleet, Selection()).exit_code == 0
    for slug in slugs + bad:
        with fleet.storage(slug).begin() as conn:
            conn.execute(text("INSERT INTO users_roles (user_id, role_id) VALUES (1, 1)"))
    return fleet


def _contents(fleet: Tenancy, slug: str) -> dict[str, list[tuple]]:
    return {table: rows(fleet, slug, f"SELECT * FROM {table} ORDER BY 1") for table in TABLES}


def test_a_downgrade_rehearsal_reports_each_tenant_and_changes_nothing(tenancy, chained) -> None:  # noqa: F811
    fleet = _fleet(tenancy, chained, ["acme", "beta"], ["bad"])
    before = {slug: _contents(fleet, slug) for slug in ("acme", "beta", "bad")}
    ledger = ledger_versions(fleet.control_engine)
    report = downgrade_tenants(fleet, Selection(), "0003", RunOptions(rehearse=True, jobs=2))
    final = report.final()
    assert report.exit_code == 1 and report.kind == "rehearse-downgrade"
    assert final["acme"].status == final["beta"].status == "ok"
    assert final["acme"].detail.startswith("would succeed: 0004")
    assert final["bad"].status == "failed" and "0004" in final["bad"].error
    assert "stock_below_1000" in final["bad"].error or "CHECK" in final["bad"].error.upper()
    for slug in ("acme", "beta", "bad"):
        assert live(fleet, slug) == "0004" and _contents(fleet, slug) == before[slug]
    assert ledger_versions(fleet.control_engine) == ledger
    # A rehearsal is not a migration: the last migration result is still the upgrade.
    assert last_results(fleet.control_engine, migrations=True)["bad"]["kind"] == "upgrade"


def test_rehearse_first_moves_no_tenant_when_one_would_fail(tenancy, chained) -> None:  # noqa: F811
    fleet = _fleet(tenancy, chained, ["acme", "beta"], ["bad"])
    before = {slug: _contents(fleet, slug) for slug in ("acme", "beta", "bad")}
    report = downgrade_tenants(fleet, Selection(), "0003", RunOptions(rehearse_first=True, jobs=2))
    assert report.exit_code == 1 and "nothing was applied" in report.notes[-1]
    assert report.kind == "rehearse-downgrade"
    for slug in ("acme", "beta", "bad"):
        assert live(fleet, slug) == "0004" and _contents(fleet, slug) == before[slug]
    # Once the data allows it, the same command rehearses, then applies everywhere.
    with fleet.storage("bad").begin() as conn:
        conn.execute(text("UPDATE products SET stock = 10"))
    applied = downgrade_tenants(fleet, Selection(), "-1", RunOptions(rehearse_first=True))
    assert applied.exit_code == 0 and applied.kind == "downgrade" and "would succeed" in applied.notes[0]
    assert {slug: live(fleet, slug) for slug in ("acme", "beta", "bad")} == dict.fromkeys(("acme", "beta", "bad"),
                                                                                           "0003")
    assert rows(fleet, "acme", "SELECT count(*) FROM users_roles") == [(1,)]


def test_a_downgrade_rehearsal_reports_a_held_tenant_busy(tenancy, chained) -> None:  # noqa: F811
    fleet = _fleet(tenancy, chained, ["acme", "held"], [])
    outcome = {}
    with fleet.storage("held").begin(exclusive=True):  # another process holds the tenant's own lock
        thread = threading.Thread(target=lambda: outcome.setdefault("report", downgrade_tenants(
            fleet, Selection(), "0003", RunOptions(rehearse=True, jobs=1, lock_timeout=0.3))))
        thread.start()
        thread.join(60)
    final = outcome["report"].final()
    assert final["held"].status == "busy" and final["acme"].status == "ok"
    assert live(fleet, "acme") == live(fleet, "held") == "0004"


def test_the_cli_flags(tenancy, cli_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_tenants(tenancy, ["acme"])
    env = {**cli_env, "PORTAL_REVISION_DIR": str(write_chain(tmp_path, DOWN_CHAIN))}
    assert run_manage(["upgrade-all-tenants"], env).returncode == 0
    down = ["downgrade-tenants", "--to", "0003", "--json"]
    rehearsed = run_manage([*down, "--rehearse"], env)  # changes nothing: no --yes needed
    assert rehearsed.returncode == 0, rehearsed.stdout + rehearsed.stderr
    assert json.loads(rehearsed.stdout)["kind"] == "rehearse-downgrade" and live(tenancy, "acme") == "0004"
    unconfirmed = run_manage([*down, "--rehearse-first"], env)  # it applies: it asks first
    assert unconfirmed.returncode == 2 and "pass --yes" in unconfirmed.stderr
    both = run_manage([*down, "--rehearse", "--rehearse-first"], env)
    assert both.returncode == 2 and "exclude each other" in both.stderr and live(tenancy, "acme") == "0004"
    applied = run_manage([*down, "--rehearse-first", "--yes"], env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert json.loads(applied.stdout)["kind"] == "downgrade" and live(tenancy, "acme") == "0003"
