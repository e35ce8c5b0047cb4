"""Tenants created from the template at head are the tenants the chain builds, and stale templates are never used."""

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.migrate.control import ensure_control
from tenants.migrate.lifecycle import TenantSpec, provision_tenant
from tenants.migrate.templates import TEMPLATE_DIR
from tenants.safety.drift import compare_tenant, expected_schema, reflect_tenant
from tests.chains import add_revision, copy_chain
from tests.conftest import run_manage
from tests.fleet_support import SLOW, has_table, live, with_chain

# Everything drift compares: columns, types, server defaults, CHECK, UNIQUE, indexes; and a seeded row.
RICH = """
op.create_table("invoices", sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("number", sa.String(20), nullable=False),
                sa.Column("total", sa.Numeric(10, 2), nullable=False, server_default="0"),
                sa.Column("state", sa.String(10), nullable=False, server_default="open"),
                sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="CASCADE")),
                sa.CheckConstraint("total >= 0", name="ck_invoices_total"),
                sa.UniqueConstraint("number", name="uq_invoices_number"))
op.create_index("ix_invoices_state", "invoices", ["state"])
with op.batch_alter_table("products") as batch:
    batch.add_column(sa.Column("weight", sa.Float, nullable=False, server_default="1.5"))
op.execute("INSERT INTO invoices (number, total) VALUES ('INV-1', 10)")
"""


@pytest.fixture
def rich(settings, tmp_path):
    chain = copy_chain(tmp_path)
    add_revision(chain, "0004", "0003", RICH)
    t = Tenancy(with_chain(settings, chain))
    ensure_control(t)
    yield t
    t.close()


def tables_and_rows(tenancy: Tenancy, slug: str) -> dict[str, int]:
    storage = tenancy.storage(slug)
    with storage.begin() as conn:
        names = inspect(conn).get_table_names(storage.version_table_schema)
        return {name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar() for name in sorted(names)}


def test_a_tenant_from_the_template_is_exactly_one_built_by_the_chain(rich):
    fast = create_tenant(rich, "fast")
    provision_tenant(rich, TenantSpec("replayed"), None)  # no template: Alembic runs the chain, as before
    assert live(rich, "fast") == live(rich, "replayed") == "0004"
    replayed_storage, fast_storage = rich.storage("replayed"), rich.storage(fast)
    with replayed_storage.begin() as conn:
        replayed = reflect_tenant(conn)
    with fast_storage.begin() as conn:
        assert compare_tenant(fast_storage, conn, replayed) == []
        assert compare_tenant(fast_storage, conn, expected_schema(rich.scripts, "0004", fast_storage, conn)) == []
        assert inspect(conn).get_check_constraints("invoices", fast_storage.version_table_schema)
    assert tables_and_rows(rich, "fast") == tables_and_rows(rich, "replayed")
    assert tables_and_rows(rich, "fast")["invoices"] == 1
    assert _ledger(rich) == {"fast": "0004", "replayed": "0004"}
    template = list((Path(rich.settings.tenant_dir) / TEMPLATE_DIR).glob("0004-*"))
    assert template, "the fast path made its template at head"


def test_the_drift_check_would_see_a_difference(rich):
    """The comparison above can fail: a tenant changed after creation differs from the chain's schema."""
    create_tenant(rich, "fast")
    storage = rich.storage("fast")
    with storage.begin() as conn:
        conn.execute(text("DROP INDEX ix_invoices_state"))
    with storage.begin() as conn:
        found = compare_tenant(storage, conn, expected_schema(rich.scripts, "0004", storage, conn))
    assert [d.kind for d in found] == ["missing-index"]


def _ledger(tenancy: Tenancy) -> dict[str, str | None]:
    from tenants.core.ledger import ledger_versions

    return ledger_versions(tenancy.control_engine)


def test_a_template_of_another_head_or_an_edited_revision_is_never_used(settings, tmp_path):
    chain = copy_chain(tmp_path)
    first = Tenancy(with_chain(settings, chain))
    ensure_control(first)
    create_tenant(first, "before")
    first.close()
    note = "op.create_table('notes', sa.Column('id', sa.Integer, primary_key=True))"
    add_revision(chain, "0004", "0003", note)
    moved = Tenancy(with_chain(settings, chain))
    try:
        create_tenant(moved, "after")
        assert live(moved, "after") == "0004" and has_table(moved, "after", "notes")
        assert live(moved, "before") == "0003"
    finally:
        moved.close()
    # The same head, its revision edited in place (before any tenant ran it in production): a new template.
    memos = "op.create_table('memos', sa.Column('id', sa.Integer, primary_key=True))"
    add_revision(chain, "0004", "0003", note + "\n" + memos)
    edited = Tenancy(with_chain(settings, chain))
    try:
        create_tenant(edited, "edited")
        assert has_table(edited, "edited", "memos")
    finally:
        edited.close()
    folder = Path(settings.tenant_dir) / TEMPLATE_DIR
    templates = [p for p in folder.iterdir() if not p.name.endswith(".lock")]
    assert len(templates) == 1 and templates[0].name.startswith("0004-"), "stale templates are removed"


def test_two_creations_at_once_before_any_template_both_succeed_with_one_template(settings, cli_env, tmp_path):
    import subprocess
    import sys

    from tenants.core.settings import PROJECT_ROOT

    chain = copy_chain(tmp_path)
    add_revision(chain, "0004", "0003", SLOW.format(seconds=1))  # the template build takes a second
    env = {**cli_env, "PORTAL_REVISION_DIR": str(chain)}
    ensure = run_manage(["migrate-control"], env)
    assert ensure.returncode == 0, ensure.stderr
    full = {**__import__("os").environ, **env, "PYTHONPATH": str(PROJECT_ROOT)}
    processes = [subprocess.Popen([sys.executable, str(PROJECT_ROOT / "manage.py"), "create-tenant", slug],
                                  env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for slug in ("one", "two")]
    try:
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert [p.returncode for p in processes] == [0, 0], outputs
    t = Tenancy(with_chain(settings, chain))
    try:
        assert live(t, "one") == live(t, "two") == "0004"
        assert {x.slug: x.status for x in t.registry.all()} == {"one": "active", "two": "active"}
    finally:
        t.close()
    folder = Path(settings.tenant_dir) / TEMPLATE_DIR
    assert len([p for p in folder.iterdir() if not p.name.endswith(".lock")]) == 1


@pytest.mark.parametrize("revision", [
    "op.alter_column('products', 'name', type_=sa.String(100))",  # sqlite-fails: ALTER outside batch mode
    "op.add_column('products', sa.Column('seen', sa.DateTime(), server_default=sa.text('now()')))",  # sqlite-function
])
def test_a_chain_that_fails_on_sqlite_refuses_create_tenant_there(tmp_path, revision):
    chain = copy_chain(tmp_path)
    add_revision(chain, "0004", "0003", revision)
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}", "PORTAL_TENANT_DIR": str(tmp_path / "tenants"),
           "PORTAL_INSTANCE_PATH": str(tmp_path), "PORTAL_REVISION_DIR": str(chain)}
    result = run_manage(["create-tenant", "acme"], env)
    assert result.returncode == 2, result.stderr
    assert "sqlite-f" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "tenants" / "acme.sqlite3").exists()
    listed = run_manage(["list-tenants", "--json"], env)
    assert listed.returncode == 0 and "acme" not in listed.stdout
    assert not [p for p in (tmp_path / "tenants" / TEMPLATE_DIR).iterdir() if p.suffix == ".sqlite3"]
