"""No row is lost by a revision that does not drop it: SQLite table rebuilds must not cascade.

Revision 0003 adds a column to `roles` in batch mode; on SQLite that rebuilds the table (create
a copy, DROP TABLE roles, rename). With foreign keys enforced, that DROP deletes every role first
and ON DELETE CASCADE empties users_roles. Every path that runs revisions must keep the links.
"""

from dataclasses import replace

import pytest
from sqlalchemy import text

from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import downgrade_tenants, upgrade_tenants
from tenants.fleet.single import move_tenant
from tenants.migrate.migrator import current_revision
from tenants.migrate.selection import Selection
from tests.chains import chain_with
from tests.conftest import run_manage
from tests.factories import make_product, make_user


def every_table(storage) -> dict[str, int]:
    with storage.begin() as conn:
        return {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: S608  (fixed names)
                for table in ("users", "roles", "users_roles", "products")}


def seeded(tenancy, slug: str = "acme"):  # type: ignore[no-untyped-def]
    create_tenant(tenancy, slug)
    storage = tenancy.storage(slug)
    make_user(storage, role="editors")
    make_user(storage, role="viewers", email="bob@example.com")
    make_product(storage)
    return storage


DESTRUCTIVE = RunOptions(allow_destructive=True)  # downgrading 0003 drops roles.console_access
FULL = {"users": 2, "roles": 2, "users_roles": 2, "products": 1}


def test_single_tenant_downgrade_and_upgrade_through_a_rebuild_keep_every_row(tenancy):
    storage = seeded(tenancy)
    assert move_tenant(tenancy, "acme", "0002", downgrade=True, options=DESTRUCTIVE).exit_code == 0
    assert current_revision(storage) == "0002"
    assert every_table(storage) == FULL
    assert move_tenant(tenancy, "acme", "head").exit_code == 0
    assert current_revision(storage) == "0003"
    assert every_table(storage) == FULL


def test_fleet_runs_through_a_rebuild_keep_every_row(tenancy):
    storage = seeded(tenancy)
    assert downgrade_tenants(tenancy, Selection(), "0002", replace(DESTRUCTIVE, jobs=1)).exit_code == 0
    assert every_table(storage) == FULL
    assert upgrade_tenants(tenancy, Selection(), "head", RunOptions(jobs=2)).exit_code == 0
    assert current_revision(storage) == "0003"
    assert every_table(storage) == FULL


@pytest.mark.slow
def test_cli_single_tenant_commands_through_a_rebuild_keep_every_row(tenancy, cli_env):
    storage = seeded(tenancy)
    result = run_manage(["downgrade-tenant", "acme", "--to", "0002", "--yes", "--allow-destructive"], cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert every_table(storage) == FULL
    result = run_manage(["upgrade-tenant", "acme"], cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert current_revision(storage) == "0003"
    assert every_table(storage) == FULL


DANGLING = {"0004": ("0003", "op.execute(\"INSERT INTO users_roles (user_id, role_id) VALUES (999, 999)\")")}


def test_a_revision_that_leaves_a_dangling_reference_fails_and_changes_nothing(settings, tmp_path):
    current = Tenancy(settings)
    storage = seeded(current)
    current.close()
    tenancy = Tenancy(replace(settings, revision_dir=chain_with(tmp_path, DANGLING)))
    [failed] = move_tenant(tenancy, "acme", "head").results
    assert failed.status == "failed" and "0004" in failed.error and "foreign key" in failed.error.lower()
    storage = tenancy.storage("acme")
    assert current_revision(storage) == "0003"
    assert every_table(storage) == FULL
    tenancy.close()


def test_foreign_keys_are_enforced_again_after_a_migration(tenancy, backend):
    storage = seeded(tenancy)
    assert move_tenant(tenancy, "acme", "0002", downgrade=True, options=DESTRUCTIVE).exit_code == 0
    if backend == "sqlite":
        with storage.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(Exception), storage.begin() as conn:  # noqa: B017  (the driver's IntegrityError)
        conn.execute(text("INSERT INTO users_roles (user_id, role_id) VALUES (999, 999)"))
    assert every_table(storage) == FULL
