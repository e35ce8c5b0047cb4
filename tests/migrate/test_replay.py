"""The replay fast path (SQL rendered once, run in each tenant) leaves the same schema and data as Alembic online."""

from pathlib import Path

import pytest
from sqlalchemy import text

from tenants.core.tenancy import Tenancy
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import downgrade_tenants, upgrade_tenants
from tenants.migrate.replay import render_range
from tenants.migrate.selection import Selection
from tests.fleet_support import columns, live, make_tenants, rows, with_chain, write_chain

# Column adds with defaults, new tables with keys, indexes (plain, unique, partial), an enum type,
# a rename, a type change, data with quotes, '%' and bound values, and a CHECK constraint.
RICH_CHAIN = {
    "0004": ("0003", """
        op.create_table("suppliers",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(120), nullable=False, server_default="unnamed"),
            sa.Column("rating", sa.Numeric(3, 1), server_default=sa.text("2.5")),
            sa.Column("tier", sa.Enum("gold", "silver", name="supplier_tier"), nullable=False, server_default="silver"))
        op.create_index("ix_suppliers_name", "suppliers", ["name"])
        """, ""),
    "0005": ("0004", """
        op.add_column("products", sa.Column("supplier_id", sa.Integer,
                      sa.ForeignKey("suppliers.id", name="fk_products_supplier_id_suppliers", ondelete="SET NULL")))
        op.add_column("products", sa.Column("note", sa.Text, server_default="100% 'real' :colon", nullable=False))
        op.create_index("uq_products_name_active", "products", ["name"], unique=True,
                        postgresql_where=sa.text("active"))
        """, ""),
    "0006": ("0005", """
        op.execute("INSERT INTO suppliers (name, tier) VALUES ('O''Brien & 50% off', 'gold')")
        t = sa.table("suppliers", sa.column("name", sa.String), sa.column("tier", sa.String))
        op.bulk_insert(t, [{"name": "Acme :x %(y)s", "tier": "silver"}, {"name": "Beta", "tier": "gold"}])
        op.alter_column("roles", "description", new_column_name="summary")
        op.alter_column("suppliers", "name", type_=sa.String(200), existing_type=sa.String(120))
        op.create_check_constraint("ck_suppliers_rating_range", "suppliers", "rating BETWEEN 0 AND 5")
        """, ""),
}

SIGNATURE = [
    ("columns", "SELECT table_name, column_name, ordinal_position, data_type, character_maximum_length, "
                "numeric_precision, numeric_scale, is_nullable, column_default FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY 1, 3"),
    ("constraints", "SELECT r.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                    "JOIN pg_class r ON r.oid = c.conrelid WHERE r.relnamespace = current_schema()::regnamespace "
                    "ORDER BY 1, 2"),
    ("indexes", "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "ORDER BY 1, 2"),
    ("types", "SELECT t.typname, e.enumlabel, e.enumsortorder FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
              "WHERE t.typnamespace = current_schema()::regnamespace ORDER BY 1, 3"),
    ("data", "SELECT id, name, tier, rating FROM suppliers ORDER BY id"),
    ("roles", "SELECT id, name, summary FROM roles ORDER BY id"),
    ("version", "SELECT version_num FROM alembic_version"),
]


def signature(tenancy: Tenancy, slug: str) -> dict[str, list]:
    """Return the tenant's schema and data as comparable rows, with its schema name taken out."""
    schema = "tenant_" + slug
    with tenancy.storage(slug).begin() as conn:
        return {name: [tuple(str(v).replace(schema, "<tenant>") if v is not None else None for v in row)
                       for row in conn.execute(text(sql))] for name, sql in SIGNATURE}


@pytest.fixture
def rich_fleet(settings, tmp_path: Path, tenancy: Tenancy):  # type: ignore[no-untyped-def]
    """Tenants 'online_t' and 'replay_t' at base, and a Tenancy over the rich chain."""
    from tests.conftest import require_postgres

    require_postgres()
    if not settings.control_url.startswith("postgresql"):
        pytest.skip("the replay fast path is PostgreSQL only; SQLite tenants always run Alembic online")
    make_tenants(tenancy, ["online_t", "replay_t"])
    assert downgrade_tenants(tenancy, Selection(), "base", RunOptions(allow_destructive=True)).exit_code == 0
    fleet = Tenancy(with_chain(settings, write_chain(tmp_path, RICH_CHAIN)))
    yield fleet
    fleet.close()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_replay_and_online_leave_identical_schemas(rich_fleet: Tenancy) -> None:
    online = upgrade_tenants(rich_fleet, Selection(tenants=("online_t",)), options=RunOptions(replay=False))
    replayed = upgrade_tenants(rich_fleet, Selection(tenants=("replay_t",)), options=RunOptions(replay=True))
    assert online.exit_code == replayed.exit_code == 0
    assert "Alembic online" in list(online.results)[0].detail
    assert "replayed SQL" in list(replayed.results)[0].detail
    assert live(rich_fleet, "replay_t") == "0006"
    expected = signature(rich_fleet, "online_t")
    assert expected["data"][0][1] == "O'Brien & 50% off" and expected["data"][1][1] == "Acme :x %(y)s"
    assert signature(rich_fleet, "replay_t") == expected


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_range_needing_a_live_connection_runs_online(rich_fleet: Tenancy, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chain = {**RICH_CHAIN, "0007": ("0006", """
        count = op.get_bind().execute(sa.text("SELECT count(*) FROM suppliers")).scalar()
        op.execute(sa.text("UPDATE suppliers SET rating = :n").bindparams(n=count))
        """, "")}
    fleet = Tenancy(with_chain(settings, write_chain(tmp_path, chain, "live_chain")))
    try:
        with pytest.raises(AttributeError):
            render_range(fleet.scripts, "postgresql", None, "0007")
        # The lint cannot render 0007 offline either, so the gate needs the operator's say-so.
        report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=2, allow_destructive=True))
        assert report.exit_code == 0
        assert all("Alembic online" in r.detail for r in report.results)
        assert {s: live(fleet, s) for s in ("online_t", "replay_t")} == {"online_t": "0007", "replay_t": "0007"}
    finally:
        fleet.close()


# Three revisions replayed as one query; 0006's constraint breaks on a tenant whose data violates it.
LATE_FAILURE_CHAIN = {
    "0004": ("0003", 'op.add_column("products", sa.Column("weight", sa.Integer))', ""),
    "0005": ("0004", 'op.create_index("ix_products_weight", "products", ["weight"])', ""),
    "0006": ("0005", 'op.create_check_constraint("ck_products_stock_small", "products", "stock < 1000")', ""),
}


@pytest.fixture
def late_fleet(settings, tmp_path: Path, tenancy: Tenancy):  # type: ignore[no-untyped-def]
    """Tenants 'fine_t' and 'big_t' (stock 5000) at 0003, and a Tenancy over LATE_FAILURE_CHAIN."""
    from tests.conftest import require_postgres

    require_postgres()
    if not settings.control_url.startswith("postgresql"):
        pytest.skip("the replay fast path is PostgreSQL only")
    make_tenants(tenancy, ["fine_t"])
    make_tenants(tenancy, ["big_t"], stock=5000)
    fleet = Tenancy(with_chain(settings, write_chain(tmp_path, LATE_FAILURE_CHAIN, "late_chain")))
    yield fleet
    fleet.close()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("rehearse", [False, True])
def test_range_run_as_one_query_still_names_the_failing_revision(late_fleet: Tenancy, rehearse: bool) -> None:
    report = upgrade_tenants(late_fleet, Selection(), options=RunOptions(replay=True, jobs=1, rehearse=rehearse))
    final = report.final()
    assert final["fine_t"].status == "ok" and "replayed SQL" in final["fine_t"].detail
    # The one query failed; the range ran again revision by revision and 0006 is named, not 0004..0006.
    assert final["big_t"].status == "failed"
    assert "at revision 0006:" in final["big_t"].error and "ck_products_stock_small" in final["big_t"].error
    assert live(late_fleet, "big_t") == "0003" and "weight" not in columns(late_fleet, "big_t", "products")
    assert rows(late_fleet, "big_t", "SELECT id, stock FROM products") == [(1, 5000)]
    assert rows(late_fleet, "big_t", "SELECT count(*) FROM users") == [(1,)]
    assert live(late_fleet, "fine_t") == ("0003" if rehearse else "0006")


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_timeout_in_a_range_names_the_range_and_waits_once(late_fleet: Tenancy) -> None:
    import time

    import psycopg2

    from tenants.migrate.errors import MigrationTimeout
    from tenants.migrate.replay import replay

    rendered = render_range(late_fleet.scripts, "postgresql", "0003", "0006")
    conn = psycopg2.connect(late_fleet.settings.control_url)
    try:
        conn.cursor().execute('LOCK TABLE "tenant_big_t".products IN ACCESS EXCLUSIVE MODE')  # test scaffolding
        started = time.monotonic()
        with pytest.raises(MigrationTimeout, match=r"at revisions 0004\.\.0006: .*lock timeout") as raised:
            replay(late_fleet.storage("big_t"), rendered, "0003", "0006", lock_timeout=1.0, statement_timeout=30)
        waited = time.monotonic() - started
    finally:
        conn.rollback()
        conn.close()
    assert raised.value.revision == "0004..0006"
    assert 1.0 <= waited < 1.9  # one wait for the lock, not a second run of the range
    assert live(late_fleet, "big_t") == "0003" and "weight" not in columns(late_fleet, "big_t", "products")
    assert rows(late_fleet, "big_t", "SELECT id, stock FROM products") == [(1, 5000)]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_failure_stands_when_the_lock_is_taken_before_the_rerun_names_its_revision(  # type: ignore[no-untyped-def]
        late_fleet: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    # The one-query attempt fails and releases the tenant's lock; another process takes it before
    # the per-revision re-run. The tenant failed: it must not be reported busy (retried, or waited on).
    import psycopg2

    from tenants.core.names import lock_key
    from tenants.migrate import replay as replay_module
    from tenants.migrate.errors import MigrationFailed

    conn = psycopg2.connect(late_fleet.settings.control_url)
    run_range = replay_module._run_range

    def other_process_between(*args, whole: bool, **kw):  # type: ignore[no-untyped-def]
        if not whole:
            conn.cursor().execute("SELECT pg_advisory_lock(%s)", (lock_key("big_t"),))
        return run_range(*args, whole=whole, **kw)

    monkeypatch.setattr(replay_module, "_run_range", other_process_between)
    rendered = render_range(late_fleet.scripts, "postgresql", "0003", "0006")
    try:
        with pytest.raises(MigrationFailed, match=r"at revisions 0004\.\.0006: .*ck_products_stock_small"):
            replay_module.replay(late_fleet.storage("big_t"), rendered, "0003", "0006", lock_timeout=1,
                                 statement_timeout=30)
    finally:
        conn.close()
    assert live(late_fleet, "big_t") == "0003"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_tenant_moved_since_the_plan_or_locked_is_left_as_it_is(late_fleet: Tenancy) -> None:
    # The hot path's statements run on the driver's cursor: its errors must still mean what they meant.
    import psycopg2

    from tenants.core.errors import TenantBusy
    from tenants.core.names import lock_key
    from tenants.migrate.replay import replay

    rendered = render_range(late_fleet.scripts, "postgresql", "0003", "0006")
    assert upgrade_tenants(late_fleet, Selection(tenants=("fine_t",)), "0004").exit_code == 0
    # At 0004, not at the 0003 the range starts from: None (the caller runs Alembic online), nothing run.
    assert replay(late_fleet.storage("fine_t"), rendered, "0003", "0006", lock_timeout=1, statement_timeout=30) is None
    assert live(late_fleet, "fine_t") == "0004"
    conn = psycopg2.connect(late_fleet.settings.control_url)
    try:
        conn.cursor().execute("SELECT pg_advisory_lock(%s)", (lock_key("big_t"),))  # another process's tenant lock
        with pytest.raises(TenantBusy):
            replay(late_fleet.storage("big_t"), rendered, "0003", "0006", lock_timeout=1, statement_timeout=30)
        conn.cursor().execute("SELECT pg_advisory_unlock(%s)", (lock_key("big_t"),))
        conn.cursor().execute('DROP TABLE "tenant_big_t".alembic_version')  # emptied behind the portal's back
        conn.commit()
    finally:
        conn.close()
    assert replay(late_fleet.storage("big_t"), rendered, "0003", "0006", lock_timeout=1, statement_timeout=30) is None
    assert "weight" not in columns(late_fleet, "big_t", "products")
