"""Branched tenants: alembic_version holds two rows (two branches applied apart, or a downgrade below a merge).

Such a tenant is read, shown and migrated like any other: an upgrade to head merges it, a
downgrade from the merge to one parent leaves it at both parents, and no row is lost.
"""

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from tenants.cli import fleet as fleet_cli
from tenants.cli import tenant as tenant_cli
from tenants.core.ledger import ledger_versions
from tenants.core.tenancy import Tenancy
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import downgrade_tenants, upgrade_tenants
from tenants.fleet.single import move_tenant
from tenants.migrate.overview import tenant_overview, version_rows
from tenants.migrate.selection import Selection
from tenants.migrate.versions import read_versions
from tenants.safety.drift import check_drift
from tests.chains import add_revision, copy_chain
from tests.conftest import command_group
from tests.fleet_support import columns, live, make_tenants, rows

BRANCHED = "0004a, 0004b"
TABLES = ("roles", "users", "users_roles", "products")


@pytest.fixture
def merged(tenancy: Tenancy, tmp_path):  # type: ignore[no-untyped-def]
    """Two tenants full of rows at 0003, and a chain 0003 -> 0004a | 0004b -> 0005 (merge)."""
    make_tenants(tenancy, ["acme", "beta"])
    for slug in ("acme", "beta"):
        with tenancy.storage(slug).begin() as conn:
            conn.execute(text("INSERT INTO users_roles (user_id, role_id) VALUES (1, 1)"))
    chain = copy_chain(tmp_path)
    add_revision(chain, "0004a", "0003", "op.add_column('products', sa.Column('weight', sa.Integer()))",
                 downgrade="op.drop_column('products', 'weight')")
    add_revision(chain, "0004b", "0003", "op.add_column('users', sa.Column('nickname', sa.String(40)))",
                 downgrade="op.drop_column('users', 'nickname')")
    add_revision(chain, "0005", ("0004a", "0004b"), "op.create_table('notes', sa.Column('id', sa.Integer, "
                 "primary_key=True))", downgrade="op.drop_table('notes')")
    fleet = Tenancy(replace(tenancy.settings, revision_dir=chain))
    yield fleet, chain
    fleet.close()


def _counts(tenancy: Tenancy, slug: str) -> dict[str, int]:
    return {table: rows(tenancy, slug, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}


def test_two_branches_applied_apart_are_read_shown_and_merged(merged) -> None:  # type: ignore[no-untyped-def]
    fleet, _chain = merged
    before = _counts(fleet, "acme")
    assert move_tenant(fleet, "acme", "0004a").exit_code == 0
    assert move_tenant(fleet, "acme", "0004b").exit_code == 0
    assert live(fleet, "acme") == BRANCHED
    assert read_versions(fleet, [fleet.registry.get("acme")])["acme"].revision == BRANCHED
    assert ledger_versions(fleet.control_engine)["acme"] == BRANCHED
    versions = {row["slug"]: row for row in version_rows(fleet)}
    assert (versions["acme"]["revision"], versions["acme"]["pending"], versions["acme"]["error"]) == (BRANCHED, 1, None)
    assert versions["beta"]["pending"] == 3
    overview = {row["slug"]: row for row in tenant_overview(fleet)}
    assert (overview["acme"]["revision"], overview["acme"]["at_head"]) == (BRANCHED, False)
    assert [d for d in check_drift(fleet, ["acme"])[0].differences] == []
    report = upgrade_tenants(fleet, Selection())
    final = report.final()
    assert report.exit_code == 0, [r.error for r in final.values()]
    assert (final["acme"].from_revision, final["acme"].to_revision) == (BRANCHED, "0005")
    assert live(fleet, "acme") == live(fleet, "beta") == "0005"
    assert _counts(fleet, "acme") == before == _counts(fleet, "beta")


def test_a_downgrade_from_the_merge_to_one_parent_and_back(merged) -> None:  # type: ignore[no-untyped-def]
    fleet, _chain = merged
    assert upgrade_tenants(fleet, Selection()).exit_code == 0
    before = _counts(fleet, "acme")
    report = downgrade_tenants(fleet, Selection(tenants=("acme",)), "0004a", RunOptions(allow_destructive=True))
    assert report.exit_code == 0, [r.error for r in report.final().values()]
    # Alembic's rule: 0004b is no descendant of 0004a, so it stays; the tenant is at both parents.
    assert live(fleet, "acme") == BRANCHED and live(fleet, "beta") == "0005"
    assert ledger_versions(fleet.control_engine)["acme"] == BRANCHED
    assert "notes" not in _tables(fleet, "acme") and "weight" in columns(fleet, "acme", "products")
    # Already at 0004a: nothing to take back; relative targets need one revision to count from.
    again = move_tenant(fleet, "acme", "0004a", downgrade=True, options=RunOptions(allow_destructive=True))
    assert again.exit_code == 0 and again.plan.at_target and live(fleet, "acme") == BRANCHED
    relative = CliRunner().invoke(command_group(tenant_cli), ["downgrade-tenant", "acme", "--to", "-1", "--yes"],
                                  env=_env(fleet))
    assert relative.exit_code == 2 and "several heads" in relative.output, relative.output
    # Down to the branch point takes back both branches; up again merges.
    report = downgrade_tenants(fleet, Selection(tenants=("acme",)), "0003", RunOptions(allow_destructive=True))
    assert report.exit_code == 0 and live(fleet, "acme") == "0003"
    assert "weight" not in columns(fleet, "acme", "products") and "nickname" not in columns(fleet, "acme", "users")
    assert upgrade_tenants(fleet, Selection()).exit_code == 0 and live(fleet, "acme") == "0005"
    assert _counts(fleet, "acme") == before


def test_the_commands_show_both_revisions(merged) -> None:  # type: ignore[no-untyped-def]
    fleet, _chain = merged
    assert upgrade_tenants(fleet, Selection()).exit_code == 0
    assert downgrade_tenants(fleet, Selection(tenants=("acme",)), "0004b", RunOptions(allow_destructive=True)
                             ).exit_code == 0
    group, env = command_group(tenant_cli, fleet_cli), _env(fleet)
    versions = CliRunner().invoke(group, ["tenant-versions", "--json"], env=env)
    assert versions.exit_code == 0, versions.output
    shown = {row["slug"]: row for row in json.loads(versions.output)}
    assert (shown["acme"]["revision"], shown["acme"]["pending"]) == (BRANCHED, 1)
    plain = CliRunner().invoke(group, ["tenant-versions"], env=env)
    assert plain.exit_code == 0 and BRANCHED in plain.output, plain.output
    listed = CliRunner().invoke(group, ["list-tenants", "--json"], env=env)
    assert listed.exit_code == 0 and {r["slug"]: r["revision"] for r in json.loads(listed.output)}["acme"] == BRANCHED
    dry = CliRunner().invoke(group, ["upgrade-all-tenants", "--dry-run"], env=env)
    assert dry.exit_code == 0 and "Traceback" not in dry.output, dry.output
    applied = CliRunner().invoke(group, ["upgrade-all-tenants", "--json"], env=env)
    assert applied.exit_code == 0, applied.output
    assert live(fleet, "acme") == "0005"


def _tables(tenancy: Tenancy, slug: str) -> set[str]:
    from sqlalchemy import inspect

    storage = tenancy.storage(slug)
    with storage.begin() as conn:
        return set(inspect(conn).get_table_names(schema=storage.version_table_schema))


def _env(tenancy: Tenancy) -> dict[str, str]:
    s = tenancy.settings
    return {"DATABASE_URL": s.control_url, "PORTAL_TENANT_DIR": str(s.tenant_dir),
            "PORTAL_REVISION_DIR": str(s.revision_dir), "PORTAL_LOCK_TIMEOUT": str(s.lock_timeout)}
