"""Tenants created from the template at head are the tenants the chain builds, and stale templates are never used."""

import json
from datetime import datetime
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


# The synthetic bench's kinds of change (bench/create_tenants.py), the history a dump of the head must not replay:
# a table with a serial id, a default and a foreign key, then columns added, indexed, re-defaulted, renamed and
# dropped, and seeded rows (users_roles included) that move the sequences.
HISTORY = {
    "0004": """
op.create_table("extra", sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("name", sa.String(80), nullable=False),
                sa.Column("created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP")),
                sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="CASCADE")))
""",
    "0005": """
with op.batch_alter_table("extra") as b:
    b.add_column(sa.Column("code", sa.String(20)))
    b.add_column(sa.Column("score", sa.Integer, nullable=False, server_default="0"))
""",
    "0006": 'op.create_index("ix_extra_code", "extra", ["code"])',
    "0007": """
with op.batch_alter_table("extra") as b:
    b.alter_column("score", server_default="1")
with op.batch_alter_table("products") as b:
    b.add_column(sa.Column("note_a", sa.String(40)))
    b.add_column(sa.Column("note_b", sa.String(40)))
op.create_index("ix_products_note_a", "products", ["note_a"])
""",
    "0008": """
op.drop_index("ix_products_note_a", "products")
with op.batch_alter_table("products") as b:
    b.drop_column("note_a")
    b.alter_column("note_b", new_column_name="label")
    b.alter_column("stock", server_default="0")
""",
    "0009": """
op.execute("INSERT INTO roles (name, description) VALUES ('seed', 'seeded'), ('other', 'also seeded')")
op.execute("INSERT INTO users (email, full_name, password_hash, active, created_at) "
           "VALUES ('seed@example.com', 'Seed', 'x', true, '2026-01-01 00:00:00')")
op.execute("INSERT INTO users_roles (user_id, role_id) SELECT u.id, r.id FROM users u, roles r")
# created_at given: its CURRENT_TIMESTAMP default would differ between two builds a second apart
op.execute("INSERT INTO extra (name, code, role_id, created_at) "
           "VALUES ('one', 'A', 1, '2026-01-01 00:00:00'), ('two', 'B', 2, '2026-01-01 00:00:00')")
op.execute("DELETE FROM extra WHERE name = 'two'")
""",
}


def _tenancy(settings, chain):
    t = Tenancy(with_chain(settings, chain))
    ensure_control(t)
    return t


@pytest.fixture
def rich(settings, tmp_path):
    chain = copy_chain(tmp_path)
    add_revision(chain, "0004", "0003", RICH)
    t = _tenancy(settings, chain)
    yield t
    t.close()


@pytest.fixture(params=["project", "history"])
def chain_kind(request, settings, tmp_path):
    """The project's chain, and one with the synthetic bench's kinds of change on top of it."""
    chain = copy_chain(tmp_path)
    if request.param == "history":
        down = "0003"
        for rev, body in HISTORY.items():
            add_revision(chain, rev, down, body)
            down = rev
    t = _tenancy(settings, chain)
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


def test_a_tenant_from_the_head_template_is_exactly_one_built_by_replaying_the_chain(chain_kind):
    """The fast path (SQLite: a copy; PostgreSQL: the pg_dump of the head) against Alembic replaying the chain."""
    t = chain_kind
    head = t.head()
    create_tenant(t, "fast")
    provision_tenant(t, TenantSpec("replayed"), None)  # no template: Alembic runs the chain, as before
    fast, replayed = t.storage("fast"), t.storage("replayed")
    assert live(t, "fast") == live(t, "replayed") == head
    with replayed.begin() as conn:
        reflected = reflect_tenant(conn)
    with fast.begin() as conn:
        assert compare_tenant(fast, conn, reflected) == []
        assert compare_tenant(fast, conn, expected_schema(t.scripts, head, fast, conn)) == []
    assert table_rows(t, "fast") == table_rows(t, "replayed")
    if fast.dialect == "postgresql":
        [dump] = (Path(t.settings.tenant_dir) / TEMPLATE_DIR).glob(f"{head}-*.pg*.dump.json")
        script = "".join(json.loads(dump.read_text())["parts"])
        assert "DROP COLUMN" not in script and "CREATE SCHEMA" in script, "the head's final state, not its history"
        assert catalog(t, "fast") == catalog(t, "replayed")
    # Sequences start where replay's do: the next row of every table with a generated id gets the same id.
    ids = next_ids(t, "fast")
    assert ids == next_ids(t, "replayed")
    if head != "0003":
        assert table_rows(t, "fast")["users_roles"] == [(1, 1), (1, 2)]
        assert ids["roles"] == 3 and ids["users"] == 2 and ids["products"] == 1
        # SQLite reuses the highest id + 1; a PostgreSQL sequence goes on from the deleted row's id.
        assert ids["extra"] == (3 if t.storage("fast").dialect == "postgresql" else 2)


def table_rows(tenancy: Tenancy, slug: str) -> dict[str, list[tuple]]:
    """Every row of every table, sorted; times are left out (a default of now() is the moment a row was made)."""
    storage = tenancy.storage(slug)
    with storage.begin() as conn:
        names = inspect(conn).get_table_names(storage.version_table_schema)
        return {name: sorted(tuple(v for v in row if not isinstance(v, datetime)) for row in
                             conn.execute(text(f'SELECT * FROM "{name}"'))) for name in sorted(names)}


def next_ids(tenancy: Tenancy, slug: str) -> dict[str, int]:
    """Insert one row in each table with a generated id and return the ids given (rolled back)."""
    values = {"roles": "(name, description) VALUES ('new', 'n')",
              "users": "(email, full_name, password_hash, active, created_at) VALUES ('n@x', 'N', 'x', true, "
                       "CURRENT_TIMESTAMP)",
              "products": "(name, sku, price, stock, active, created_at) VALUES ('n', 'N-1', 1, 1, true, "
                          "CURRENT_TIMESTAMP)",
              "extra": "(name) VALUES ('new')", "invoices": "(number) VALUES ('NEW')"}
    storage = tenancy.storage(slug)
    with storage.begin(rehearse=True) as conn:
        tables = set(inspect(conn).get_table_names(storage.version_table_schema))
        return {name: conn.execute(text(f'INSERT INTO "{name}" {sql} RETURNING id')).scalar()
                for name, sql in values.items() if name in tables}


# PostgreSQL's own account of a schema, its name left out: columns (type, default, nullability), every
# constraint and index as the server prints it, and every sequence with its owner column.
CATALOG = {
    "columns": "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
               "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
               "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
               "WHERE c.relnamespace = CAST(:s AS regnamespace) AND c.relkind = 'r' AND a.attnum > 0 "
               "AND NOT a.attisdropped ORDER BY c.relname, a.attnum",
    "constraints": "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE connamespace = CAST(:s AS regnamespace) ORDER BY 1, 2",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = :s ORDER BY 1, 2",
    "sequences": "SELECT sequencename, data_type::text, start_value, increment_by, max_value, cache_size, cycle, "
                 "last_value FROM pg_sequences WHERE schemaname = :s ORDER BY 1",
    "owned": "SELECT s.relname, t.relname, a.attname, d.deptype FROM pg_depend d "
             "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_class t ON t.oid = d.refobjid "
             "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid "
             "WHERE s.relnamespace = CAST(:s AS regnamespace) ORDER BY 1",
}


def catalog(tenancy: Tenancy, slug: str) -> dict[str, list[tuple]]:
    storage = tenancy.storage(slug)
    schema = storage.version_table_schema
    with storage.begin() as conn:
        conn.execute(text("SELECT set_config('search_path', 'pg_catalog', true)"))  # regclass text: qualified
        return {what: [tuple(str(v).replace(schema, "S") for v in row)
                       for row in conn.execute(text(sql), {"s": schema})] for what, sql in CATALOG.items()}


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
    keys = template_keys(Path(settings.tenant_dir) / TEMPLATE_DIR)
    assert len(keys) == 1 and keys.pop().startswith("0004-"), "stale templates are removed"


def template_keys(folder: Path) -> set[str]:
    """The chains the template folder holds templates of (PostgreSQL: the rendered chain and its dumps)."""
    return {p.name.split(".", 1)[0] for p in folder.iterdir() if not p.name.endswith(".lock")}


def scratch_schemas(tenancy: Tenancy) -> list[str]:
    """The template builds' scratch schemas left in the control database (none, ever, after a build)."""
    if tenancy.settings.control_url.startswith("sqlite"):
        return []
    with tenancy.control_engine.connect() as conn:
        return list(conn.execute(text(r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'portal\_template\_%'"))
                    .scalars())


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
        assert scratch_schemas(t) == []
    finally:
        t.close()
    folder = Path(settings.tenant_dir) / TEMPLATE_DIR
    assert len(template_keys(folder)) == 1
    assert len(list(folder.glob("*.sqlite3" if settings.control_url.startswith("sqlite") else "*.dump.json"))) == 1


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
