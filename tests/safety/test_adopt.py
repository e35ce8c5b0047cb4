"""create-tenant --adopt: an existing schema or SQLite file is registered at the revision its schema matches.

Its rows are never touched; one that matches no revision, or not the one its alembic_version
says, is refused (exit 2) and nothing is registered.
"""

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from tenants.cli import tenant as tenant_cli
from tenants.core.backends import storage_for
from tenants.core.errors import InvalidTenantName, InvalidUsage, TenantExists
from tenants.core.ledger import last_results, ledger_versions
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.fleet.runs import upgrade_tenants
from tenants.migrate.migrator import current_revision, migrate_tenant
from tenants.migrate.selection import Selection
from tenants.safety.adopt import adopt_tenant
from tenants.safety.drift import check_drift
from tenants.safety.errors import AdoptionRefused
from tests.conftest import command_group

TABLES = ("roles", "users", "users_roles", "products")


def _existing(tenancy: Tenancy, slug: str, revision: str = "head", *, stamped: bool = False,
              database_url: str | None = None) -> TenantStorage:
    """Build a schema or file the way another tool would: the chain's tables, rows in every one, no registry row."""
    s = tenancy.settings
    storage = storage_for(slug, database_url, s.control_url, s.tenant_dir, tenancy.engines)
    storage.create()
    migrate_tenant(storage, tenancy.scripts, revision)
    with storage.begin() as conn:
        conn.execute(text("INSERT INTO roles (id, name, description) VALUES (1, 'staff', 'Staff'), (2, 'ops', 'Ops')"))
        conn.execute(text("INSERT INTO users (id, email, full_name, password_hash, active, created_at) VALUES "
                          "(1, 'ann@x.test', 'Ann', 'x', true, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO users_roles (user_id, role_id) VALUES (1, 1), (1, 2)"))
        conn.execute(text("INSERT INTO products (id, name, sku, price, stock, active, created_at) VALUES "
                          "(1, 'Widget', 'W-1', 9.50, 3, true, CURRENT_TIMESTAMP)"))
        if not stamped:
            conn.execute(text("DROP TABLE alembic_version"))
    return storage


def _contents(storage: TenantStorage) -> dict[str, list[tuple]]:
    with storage.begin() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2"))] for t in TABLES}


def _has_version_table(storage: TenantStorage) -> bool:
    from sqlalchemy import inspect

    with storage.begin() as conn:
        return inspect(conn).has_table("alembic_version", schema=storage.version_table_schema)


@pytest.mark.parametrize("revision", ["0002", "0003"])
def test_an_unstamped_schema_is_adopted_at_the_revision_it_matches(tenancy: Tenancy, revision: str) -> None:
    storage = _existing(tenancy, "acme", revision)
    before = _contents(storage)
    adopted = adopt_tenant(tenancy, "acme")
    assert (adopted.revision, adopted.stamped, adopted.tenant.status) == (revision, True, "active")
    assert current_revision(storage) == revision and _contents(storage) == before
    assert ledger_versions(tenancy.control_engine)["acme"] == revision
    last = last_results(tenancy.control_engine, migrations=True)["acme"]
    assert last["status"] == "ok" and last["to_revision"] == revision and "adopted" in last["detail"]
    assert check_drift(tenancy, ["acme"])[0].differences == []
    # From now on it is a tenant like any other: the fleet upgrades it, its rows kept.
    assert upgrade_tenants(tenancy, Selection()).exit_code == 0
    assert current_revision(storage) == "0003"
    assert {t: len(r) for t, r in _contents(storage).items()} == {t: len(r) for t, r in before.items()}


def test_a_stamped_schema_that_agrees_is_adopted_as_it_is(tenancy: Tenancy) -> None:
    storage = _existing(tenancy, "acme", "0002", stamped=True)
    before = _contents(storage)
    adopted = adopt_tenant(tenancy, "acme", "Acme Corp")
    assert (adopted.revision, adopted.stamped, adopted.tenant.display_name) == ("0002", False, "Acme Corp")
    assert current_revision(storage) == "0002" and _contents(storage) == before


def test_a_schema_with_an_extra_column_is_refused_with_the_closest_differences(tenancy: Tenancy) -> None:
    storage = _existing(tenancy, "acme")
    with storage.begin() as conn:
        conn.execute(text("ALTER TABLE products ADD COLUMN colour VARCHAR(20)"))
    before = _contents(storage)
    with pytest.raises(AdoptionRefused) as refused:
        adopt_tenant(tenancy, "acme")
    message = str(refused.value)
    assert "matches no revision" in message and "closest is 0003" in message
    assert "extra-column: products.colour" in message and "nothing was registered" in message
    assert tenancy.registry.find("acme") is None and "acme" not in ledger_versions(tenancy.control_engine)
    assert not _has_version_table(storage) and _contents(storage) == before


def test_an_alembic_version_that_disagrees_with_the_schema_is_refused(tenancy: Tenancy) -> None:
    storage = _existing(tenancy, "acme", "0003", stamped=True)
    with storage.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    with pytest.raises(AdoptionRefused, match=r"says it is at 0002 \(alembic_version\) but its schema matches 0003"):
        adopt_tenant(tenancy, "acme")
    assert tenancy.registry.find("acme") is None and current_revision(storage) == "0002"


def test_hostile_input_registers_nothing(tenancy: Tenancy) -> None:
    with pytest.raises(InvalidUsage, match="no .* to adopt"):
        adopt_tenant(tenancy, "ghost")
    with pytest.raises(InvalidTenantName):
        adopt_tenant(tenancy, "Bad-Name")
    create_tenant(tenancy, "taken")
    with pytest.raises(TenantExists, match="already registered"):
        adopt_tenant(tenancy, "taken")
    empty = storage_for("hollow", None, tenancy.settings.control_url, tenancy.settings.tenant_dir, tenancy.engines)
    empty.create()
    with pytest.raises(AdoptionRefused, match="has no tables"):
        adopt_tenant(tenancy, "hollow")
    assert [t.slug for t in tenancy.registry.all()] == ["taken"]


def test_a_file_that_is_not_a_database_is_refused(settings, tenancy: Tenancy) -> None:
    if settings.control_url.startswith("postgresql"):
        pytest.skip("a SQLite file only")
    Path(settings.tenant_dir).mkdir(parents=True, exist_ok=True)
    (Path(settings.tenant_dir) / "junk.sqlite3").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InvalidUsage, match="cannot read"):
        adopt_tenant(tenancy, "junk")
    assert tenancy.registry.find("junk") is None


def test_the_command_with_its_own_database_url(request, settings, tenancy: Tenancy, cli_env, tmp_path) -> None:
    if settings.control_url.startswith("postgresql"):
        url = request.getfixturevalue("pg_url")  # a database of its own, dropped after the test
    else:
        url = f"sqlite:///{tmp_path / 'elsewhere' / 'legacy.sqlite3'}"
    storage = _existing(tenancy, "legacy", "0002", database_url=url)
    before = _contents(storage)
    group, runner = command_group(tenant_cli), CliRunner(env=cli_env)
    done = runner.invoke(group, ["create-tenant", "legacy", "--adopt", "--database-url", url])
    assert done.exit_code == 0, done.output
    assert "adopted tenant legacy" in done.output and "at 0002 (stamped)" in done.output
    assert tenancy.registry.get("legacy").database_url == url and _contents(storage) == before
    again = runner.invoke(group, ["create-tenant", "legacy", "--adopt", "--database-url", url])
    assert again.exit_code == 2 and "already registered" in again.output
    missing = runner.invoke(group, ["create-tenant", "nowhere", "--adopt"])
    assert missing.exit_code == 2 and "to adopt" in missing.output and "Traceback" not in missing.output
