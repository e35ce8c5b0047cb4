"""Ledger truth: a tenant found below its recorded revision is drifted, never silently rebuilt; an empty
registry beside live tenant storage is refused, not taken for an empty fleet."""

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from tenants.fleet.create import create_tenant
from tenants.migrate.migrator import current_revision
from tests.conftest import run_manage
from tests.factories import make_product


def empty_out(storage) -> None:  # type: ignore[no-untyped-def]
    """What an operator's accident looks like: the tenant's tables are gone, its storage is still there."""
    if storage.dialect == "sqlite":
        Path(storage.path).write_bytes(b"")  # a 0-byte tenant file
    else:
        with storage.begin() as conn:
            for table in ("users_roles", "products", "users", "roles", "alembic_version"):
                conn.execute(text(f"DROP TABLE {table}"))  # noqa: S608  (fixed names)


@pytest.mark.slow
def test_a_tenant_emptied_behind_the_ledger_is_drifted_not_rebuilt(tenancy, cli_env):
    create_tenant(tenancy, "acme")
    create_tenant(tenancy, "globex")
    make_product(tenancy.storage("acme"))
    empty_out(tenancy.storage("acme"))
    for args in (["upgrade-all-tenants", "--json"], ["upgrade-tenant", "acme"]):
        result = run_manage(args, cli_env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "drifted" in result.stdout + result.stderr and "ledger recorded 0003" in result.stdout + result.stderr
        assert current_revision(tenancy.storage("acme")) is None
    versions = {r["slug"]: r for r in json.loads(run_manage(["tenant-versions", "--json"], cli_env).stdout)}
    assert "drifted" in versions["acme"]["error"] and versions["globex"]["error"] is None
    only_failed = run_manage(["upgrade-all-tenants", "--only-failed", "--json"], cli_env)
    assert [r["slug"] for r in json.loads(only_failed.stdout)["results"] if r["status"] == "drifted"] == ["acme"]
    accepted = run_manage(["upgrade-tenant", "acme", "--accept-live"], cli_env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert current_revision(tenancy.storage("acme")) == "0003"
    assert run_manage(["upgrade-all-tenants"], cli_env).returncode == 0


@pytest.mark.slow
def test_an_empty_registry_beside_tenant_storage_is_refused(tenancy, cli_env, tmp_path):
    create_tenant(tenancy, "acme")
    if tenancy.settings.control_url.startswith("postgresql"):
        with tenancy.control_engine.begin() as conn:  # the registry is wiped; the tenant schema stays
            conn.execute(text("DELETE FROM tenant_versions"))
            conn.execute(text("DELETE FROM tenants"))
        env = cli_env
    else:  # a new control file next to the old tenant files
        env = {**cli_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'replaced.sqlite3'}"}
    for args in (["upgrade-all-tenants"], ["list-tenants"], ["tenant-versions"], ["for-each-tenant", "analyze"]):
        result = run_manage(args, env)
        assert result.returncode == 3, (args, result.stdout + result.stderr)
        assert "registry is empty" in result.stderr and "acme" in result.stderr and "Traceback" not in result.stderr
