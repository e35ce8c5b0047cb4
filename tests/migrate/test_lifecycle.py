"""create-tenant is all or nothing; drop-tenant removes storage and row."""

from dataclasses import replace

import pytest
from sqlalchemy import select

from tenants.core.control_schema import migration_runs, tenant_results
from tenants.core.errors import InvalidTenantName, StorageUnavailable, TenantExists, TenantNotFound
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.migrate.errors import MigrationFailed
from tenants.migrate.lifecycle import drop_tenant
from tenants.migrate.migrator import current_revision
from tenants.safety.errors import GateBlocked
from tests.chains import chain_with

BROKEN_CHAIN = {"0004": ("0003", "op.create_table('notes', sa.Column('id', sa.Integer, primary_key=True))\n"
                                 "op.execute('SELECT * FROM no_such_table')")}


def test_create_registers_an_active_tenant(tenancy):
    tenant = create_tenant(tenancy, "acme", "Acme Corp")
    assert (tenant.slug, tenant.display_name, tenant.status) == ("acme", "Acme Corp", "active")
    assert tenancy.storage("acme").exists()


def test_duplicate_slug_is_refused_and_changes_nothing(tenancy):
    create_tenant(tenancy, "acme", "Acme Corp")
    with pytest.raises(TenantExists, match="already exists"):
        create_tenant(tenancy, "acme", "Other")
    assert tenancy.registry.get("acme").display_name == "Acme Corp"
    assert current_revision(tenancy.storage("acme")) == "0003"


def test_existing_unregistered_storage_is_refused_and_kept(tenancy):
    from tenants.core.backends import storage_for

    s = tenancy.settings
    stray = storage_for("acme", None, s.control_url, s.tenant_dir, tenancy.engines)
    stray.create()
    with pytest.raises(TenantExists):
        create_tenant(tenancy, "acme")
    assert stray.exists(), "someone else's schema/file must not be dropped"
    assert tenancy.registry.find("acme") is None
    stray.drop()


def test_a_revision_failing_during_create_leaves_nothing_behind(tenancy, tmp_path):
    broken = Tenancy(replace(tenancy.settings, revision_dir=chain_with(tmp_path, BROKEN_CHAIN)))
    try:
        if tenancy.settings.control_url.startswith("sqlite"):  # the creation gate runs the chain on SQLite first
            with pytest.raises(GateBlocked, match="sqlite-fails"):
                create_tenant(broken, "acme")
            assert broken.registry.find("acme") is None
            return
        with pytest.raises(MigrationFailed, match="at revision 0004: .*no_such_table"):
            create_tenant(broken, "acme")
        assert broken.registry.find("acme") is None
    finally:
        broken.close()
    s = tenancy.settings
    from tenants.core.backends import storage_for

    assert not storage_for("acme", None, s.control_url, s.tenant_dir, tenancy.engines).exists()
    with tenancy.control_engine.connect() as conn:
        run = conn.execute(select(migration_runs).where(migration_runs.c.kind == "create-tenant")).one()
        result = conn.execute(select(tenant_results).where(tenant_results.c.run_id == run.id)).one()
    assert run.status == "failed" and result.status == "failed" and "no_such_table" in result.error
    # the failure is history only: a retry on the good chain succeeds
    assert create_tenant(tenancy, "acme").status == "active"


def test_a_failed_row_is_finished_by_a_retry(tenancy):
    create_tenant(tenancy, "acme")
    tenancy.registry.set_status("acme", "failed", "clean-up failed")
    tenant = create_tenant(tenancy, "acme")
    assert tenant.status == "active" and tenant.status_reason is None
    assert current_revision(tenancy.storage("acme")) == "0003"


def test_unreachable_tenant_database_leaves_no_row(tenancy):
    with pytest.raises(StorageUnavailable, match="cannot reach database"):
        create_tenant(tenancy, "acme", database_url="postgresql://postgres@127.0.0.1:9/nowhere")
    assert tenancy.registry.find("acme") is None


@pytest.mark.parametrize("slug", ["Acme", "x\"; drop schema public; --", "pg_toast", "public"])
def test_bad_slugs_create_nothing(tenancy, slug):
    with pytest.raises(InvalidTenantName):
        create_tenant(tenancy, slug)
    assert tenancy.registry.all() == []


def test_drop_removes_storage_and_row(tenancy):
    create_tenant(tenancy, "acme")
    storage = tenancy.storage("acme")
    drop_tenant(tenancy, "acme")
    assert not storage.exists()
    assert tenancy.registry.find("acme") is None
    with pytest.raises(TenantNotFound):
        drop_tenant(tenancy, "acme")


def test_tenant_in_its_own_database(tenancy, pg_url):
    tenant = create_tenant(tenancy, "acme", database_url=pg_url)
    storage = tenancy.storage(tenant)
    assert storage.url == pg_url and storage.kind == "postgresql-schema"
    assert current_revision(storage) == "0003"
    drop_tenant(tenancy, "acme")
    assert not storage.exists()


def test_a_row_left_provisioning_by_a_killed_process_says_how_to_recover(tenancy):
    tenancy.registry.add("acme", "Acme", None)  # what a SIGKILL during create leaves
    with pytest.raises(TenantExists, match="drop-tenant acme --yes"):
        create_tenant(tenancy, "acme")
    drop_tenant(tenancy, "acme")  # works although nothing was created
    assert create_tenant(tenancy, "acme").status == "active"
