"""One tenant through the guarded path: the same gate, backup, tenant lock and ledger as the fleet."""

import json

import pytest
from sqlalchemy import func, inspect, select, text

from tenants.core.control_schema import migration_runs
from tenants.fleet.create import create_tenant
from tenants.fleet.lock import FleetLock
from tenants.migrate.migrator import current_revision
from tenants.safety.backups.store import list_backups
from tests.conftest import run_manage
from tests.safety.test_gate import DROP_NAME, fleet


def runs(tenancy) -> int:  # type: ignore[no-untyped-def]
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(migration_runs)).scalar()


def names(tenancy, slug: str) -> list[str]:  # type: ignore[no-untyped-def]
    storage = tenancy.storage(slug)
    with storage.begin() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("products", schema=storage.version_table_schema)}
        return conn.execute(text("SELECT name FROM products")).scalars().all() if "name" in columns else []


@pytest.mark.slow
@pytest.mark.parametrize("args", [["upgrade-tenant", "acme"], ["upgrade-all-tenants", "--tenant", "acme"]])
def test_a_blocked_revision_is_refused_on_one_tenant_as_on_the_fleet(settings, cli_env, tmp_path, args):
    tenancy, env = fleet(settings, tmp_path, DROP_NAME)
    before = runs(tenancy)
    result = run_manage(args, {**cli_env, **env})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "drop-column" in result.stderr and "Traceback" not in result.stderr
    assert current_revision(tenancy.storage("acme")) == "0003" and names(tenancy, "acme") == ["acme anvil"]
    assert runs(tenancy) == before
    tenancy.close()


def test_allowed_data_loss_on_one_tenant_backs_it_up_first(settings, cli_env, tmp_path):
    tenancy, env = fleet(settings, tmp_path, DROP_NAME)
    result = run_manage(["upgrade-tenant", "acme", "--allow-destructive"], {**cli_env, **env})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "acme: 0003 -> 0004" in result.stdout
    assert [b.tenant_slug for b in list_backups(tenancy)] == ["acme"]
    assert current_revision(tenancy.storage("globex")) == "0003"
    tenancy.close()


@pytest.mark.parametrize("args", [
    ["downgrade-tenant", "acme", "--to", "0002", "--yes"], ["downgrade-tenant", "acme", "--to", "-1", "--yes"],
    ["downgrade-tenants", "--to", "0002", "--yes"],
])
@pytest.mark.slow
def test_a_downgrade_that_drops_data_needs_allow_destructive_and_is_backed_up(tenancy, cli_env, args):
    create_tenant(tenancy, "acme")
    refused = run_manage(args, cli_env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "drop-column:roles.console_access" in refused.stderr and "downgrade: drops column" in refused.stderr
    assert current_revision(tenancy.storage("acme")) == "0003" and list_backups(tenancy) == []
    done = run_manage([*args, "--allow-destructive"], cli_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert current_revision(tenancy.storage("acme")) == "0002"
    assert [b.tenant_slug for b in list_backups(tenancy)] == ["acme"]


@pytest.mark.slow
def test_one_tenant_moves_while_a_fleet_run_holds_the_fleet_lock(tenancy, cli_env):
    create_tenant(tenancy, "acme")
    lock = FleetLock(tenancy.control_engine)
    lock.acquire()
    try:
        down = run_manage(["downgrade-tenant", "acme", "--to", "-1", "--yes", "--allow-destructive"], cli_env)
        assert down.returncode == 0, down.stdout + down.stderr
        fleet_run = run_manage(["upgrade-all-tenants", "--json"], cli_env)
        assert fleet_run.returncode == 3 and json.loads(fleet_run.stdout)["status"] == "locked"
        up = run_manage(["upgrade-tenant", "acme"], cli_env)
        assert up.returncode == 0 and "acme: 0002 -> 0003" in up.stdout, up.stdout + up.stderr
    finally:
        lock.release()
