"""Rehearsal: each tenant's pending revisions run in its transaction and roll back; nothing changes."""

import json
import threading

import pytest

from tenants.core.ledger import last_results, ledger_versions
from tenants.core.tenancy import Tenancy
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import upgrade_tenants
from tenants.migrate.selection import Selection
from tests.conftest import run_manage
from tests.fleet.test_runner import CONSTRAINT_CHAIN, chained  # noqa: F401  (the fixture)
from tests.fleet_support import columns, has_table, live, make_tenants, rows


def test_rehearsal_reports_each_tenant_and_changes_nothing(tenancy: Tenancy, chained) -> None:  # noqa: F811
    make_tenants(tenancy, ["acme", "beta"])
    make_tenants(tenancy, ["bad"], stock=5000)
    fleet = chained(CONSTRAINT_CHAIN)
    before = ledger_versions(fleet.control_engine)
    report = upgrade_tenants(fleet, Selection(), options=RunOptions(rehearse=True, jobs=2))
    final = report.final()
    assert report.exit_code == 1 and report.kind == "rehearse-upgrade"
    assert final["acme"].status == final["beta"].status == "ok"
    assert final["acme"].detail.startswith("would succeed: 0004, 0005")
    assert final["bad"].status == "failed" and "0004" in final["bad"].error
    for slug in ("acme", "beta", "bad"):
        assert live(fleet, slug) == "0003" and "weight" not in columns(fleet, slug, "products")
    assert rows(fleet, "bad", "SELECT stock FROM products") == [(5000,)]
    assert ledger_versions(fleet.control_engine) == before
    # A rehearsal is not a migration: --only-failed and the last migration result ignore it.
    assert last_results(fleet.control_engine, migrations=True)["bad"]["kind"] == "create-tenant"
    assert upgrade_tenants(fleet, Selection(only_failed=True)).plan.selected == 0


def test_rehearse_first_applies_nothing_when_one_tenant_would_fail(tenancy: Tenancy, chained) -> None:  # noqa: F811
    make_tenants(tenancy, ["acme"])
    make_tenants(tenancy, ["bad"], stock=5000)
    fleet = chained(CONSTRAINT_CHAIN)
    report = upgrade_tenants(fleet, Selection(), options=RunOptions(rehearse_first=True))
    assert report.exit_code == 1 and "nothing was applied" in report.notes[-1]
    assert live(fleet, "acme") == live(fleet, "bad") == "0003"
    assert rows(fleet, "acme", "SELECT count(*) FROM products") == [(1,)]


def test_rehearse_first_applies_when_every_tenant_passes(tenancy: Tenancy, chained) -> None:  # noqa: F811
    make_tenants(tenancy, ["acme", "beta"])
    fleet = chained(CONSTRAINT_CHAIN)
    report = upgrade_tenants(fleet, Selection(), options=RunOptions(rehearse_first=True))
    assert report.exit_code == 0 and report.kind == "upgrade" and "would succeed" in report.notes[0]
    assert live(fleet, "acme") == live(fleet, "beta") == "0005"


def test_a_rehearsal_reports_a_held_tenant_busy_and_touches_nothing(tenancy: Tenancy, chained) -> None:  # noqa: F811
    make_tenants(tenancy, ["acme", "held"])
    fleet = chained(CONSTRAINT_CHAIN)
    outcome = {}
    with fleet.storage("held").begin(exclusive=True):  # another process holds the tenant's own lock
        thread = threading.Thread(target=lambda: outcome.setdefault("report", upgrade_tenants(
            fleet, Selection(), options=RunOptions(rehearse=True, jobs=1, lock_timeout=0.3))))
        thread.start()
        thread.join(60)
    final = outcome["report"].final()
    assert final["held"].status == "busy" and final["acme"].status == "ok"
    assert live(fleet, "acme") == live(fleet, "held") == "0003" and not has_table(fleet, "acme", "applied_log")


@pytest.mark.parametrize("flags, exit_code, applied", [(["--rehearse"], 0, False), (["--rehearse-first"], 0, True)])
def test_the_cli_flags(tenancy, cli_env, tmp_path, flags, exit_code, applied):
    from tests.fleet_support import write_chain

    make_tenants(tenancy, ["acme"])
    env = {**cli_env, "PORTAL_REVISION_DIR": str(write_chain(tmp_path, CONSTRAINT_CHAIN))}
    result = run_manage(["upgrade-all-tenants", "--json", *flags], env)
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert json.loads(result.stdout)["kind"] == ("upgrade" if applied else "rehearse-upgrade")
    assert live(tenancy, "acme") == ("0005" if applied else "0003")
    both = run_manage(["upgrade-all-tenants", "--rehearse", "--rehearse-first"], env)
    assert both.returncode == 2 and "exclude each other" in both.stderr
