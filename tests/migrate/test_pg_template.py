"""The pg_dump of the head: used only where it fits, built safely, exact in its rewrite, never left behind."""

import logging
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.migrate.control import ensure_control
from tenants.migrate.errors import MigrationFailed
from tenants.migrate.lifecycle import TenantSpec
from tenants.migrate.pg_template import SCRATCH_PREFIX, build_dump, dump_parts, one_script, scratch_key
from tenants.migrate.pgdump import pg_dump_major
from tenants.migrate.replay import render_range
from tenants.migrate.templates import TEMPLATE_DIR
from tests.chains import add_revision, copy_chain
from tests.fleet_support import live, rows
from tests.migrate.test_templates import scratch_schemas

LOGGER = "tenants.migrate.pg_template"


@pytest.fixture
def pg(pg_control_url, tmp_path):
    """A PostgreSQL tenancy on a copy of the project's chain (revisions can be added before first use)."""
    chain = copy_chain(tmp_path)
    t = Tenancy(TenantSettings(control_url=pg_control_url, tenant_dir=tmp_path / "tenants", lock_timeout=2.0,
                               revision_dir=chain))
    ensure_control(t)
    yield t
    t.close()


def fake_pg_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, fails: bool) -> None:
    """Put a pg_dump first on PATH that says `version` and, with `fails`, fails every dump (else runs the real one)."""
    real = __import__("shutil").which("pg_dump")
    folder = tmp_path / "bin"
    folder.mkdir()
    run = 'echo "pg_dump: error: simulated failure" >&2; exit 1' if fails else f'exec {real} "$@"'
    (folder / "pg_dump").write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) {version}";'
                                    f" exit 0; fi\n{run}\n")
    (folder / "pg_dump").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{__import__('os').environ['PATH']}")


def dumps(t: Tenancy) -> list[Path]:
    return sorted((Path(t.settings.tenant_dir) / TEMPLATE_DIR).glob("*.dump.json"))


@pytest.mark.parametrize("tool", ["missing", "other major", "failing"])
def test_without_a_usable_pg_dump_tenants_are_made_from_the_rendered_chain_said_once(pg, tmp_path, monkeypatch,
                                                                                      caplog, tool):
    if tool == "missing":
        monkeypatch.setenv("PATH", str(tmp_path))  # nothing named pg_dump there
    else:
        major = pg_dump_major()
        fake_pg_dump(tmp_path, monkeypatch, f"{major - 1 if tool == 'other major' else major}.3", tool == "failing")
    caplog.set_level(logging.INFO, logger=LOGGER)
    for slug in ("one", "two"):
        create_tenant(pg, slug)
    assert live(pg, "one") == live(pg, "two") == "0003"
    assert rows(pg, "two", "SELECT count(*) FROM roles") == [(0,)]
    said = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(said) == 1 and "run the chain's history" in said[0], said
    assert {"missing": "no pg_dump on PATH", "other major": "pg_dump is version",
            "failing": "simulated failure"}[tool] in said[0]
    assert dumps(pg) == [] and scratch_schemas(pg) == []


@pytest.mark.parametrize("tool", ["real", "failing"])
def test_a_chain_that_fails_leaves_no_schema_no_row_and_no_scratch_schema(pg, tmp_path, monkeypatch, tool):
    if tool == "failing":
        fake_pg_dump(tmp_path, monkeypatch, f"{pg_dump_major()}.3", fails=True)
    add_revision(Path(pg.settings.revision_dir), "0004", "0003",
                 'op.add_column("roles", sa.Column("description", sa.Text()))')  # already there: fails on the server
    with pytest.raises(MigrationFailed, match="0004"):
        create_tenant(pg, "acme")
    assert pg.registry.all() == []
    with pg.control_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme'")).scalar() == 0
    assert scratch_schemas(pg) == [] and dumps(pg) == []


def test_two_builds_at_once_use_their_own_scratch_schemas_and_agree(pg):
    storage = TenantSpec("builder").storage(pg)
    chain = one_script(render_range(pg.scripts, "postgresql", None, pg.head()))
    results: list[tuple[str, ...] | BaseException] = []

    def build() -> None:
        try:
            results.append(build_dump(storage, "0003-same", chain, 5.0, 60.0))
        except BaseException as e:  # noqa: BLE001 (reported by the assertion below)
            results.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and all(isinstance(r, tuple) for r in results), results
    assert results[0] == results[1], "two builds of one head give the same dump"
    assert scratch_schemas(pg) == []


def test_a_scratch_schema_of_a_dead_build_goes_and_one_being_built_stays(pg):
    dead, building = f"{SCRATCH_PREFIX}dead_00000000", f"{SCRATCH_PREFIX}busy_00000000"
    with pg.control_engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{dead}"; CREATE TABLE "{dead}".t (id int); CREATE SCHEMA "{building}"'))
    with pg.control_engine.connect() as holder, holder.begin():  # the guard of a build under way
        holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": scratch_key(building)})
        create_tenant(pg, "acme")
        assert scratch_schemas(pg) == [building]
    assert len(dumps(pg)) == 1
    with pg.control_engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{building}"'))


def test_a_tenant_made_from_the_dump_leaves_no_setting_on_the_pooled_connection(pg):
    engine = TenantSpec("acme").storage(pg).engine
    with engine.connect() as conn:
        before = conn.execute(SETTINGS).one()
    create_tenant(pg, "acme")  # builds the dump (two connections: the build and its guard)
    create_tenant(pg, "globex")
    assert len(dumps(pg)) == 1
    pooled = [engine.connect() for _ in range(engine.pool.checkedin())]
    try:
        assert len(pooled) == 2 and [conn.execute(SETTINGS).one() for conn in pooled] == [before, before]
    finally:
        for conn in pooled:
            conn.close()


SETTINGS = text("SELECT current_setting('search_path'), current_setting('check_function_bodies'), "
                "current_setting('client_min_messages'), current_setting('row_security'), "
                "current_setting('statement_timeout'), current_setting('default_table_access_method')")


NAME = "portal_template_0123456789abcdef_00c0ffee"
DUMP = f"""\\restrict AbC123
SET statement_timeout = 0;
SET check_function_bodies = false;
SELECT pg_catalog.set_config('search_path', '', false);
--
-- Name: {NAME}; Type: SCHEMA; Schema: -; Owner: -
--
CREATE SCHEMA {NAME};
CREATE TABLE {NAME}.roles (id integer NOT NULL);
ALTER TABLE ONLY {NAME}.roles ALTER COLUMN id SET DEFAULT nextval('{NAME}.roles_id_seq'::regclass);
INSERT INTO {NAME}.roles VALUES (1);
SELECT pg_catalog.setval('{NAME}.roles_id_seq', 1, true);
\\unrestrict AbC123
"""


def test_the_rewrite_renames_every_place_pg_dump_names_the_schema_and_nothing_else():
    parts = dump_parts(DUMP, NAME)
    script = '"tenant_acme"'.join(parts)
    assert script.splitlines() == [
        "SET LOCAL check_function_bodies = false;",
        "--",
        "--",
        'CREATE SCHEMA "tenant_acme";',
        'CREATE TABLE "tenant_acme".roles (id integer NOT NULL);',
        'ALTER TABLE ONLY "tenant_acme".roles ALTER COLUMN id SET DEFAULT '
        """nextval('"tenant_acme".roles_id_seq'::regclass);""",
        'INSERT INTO "tenant_acme".roles VALUES (1);',
        """SELECT pg_catalog.setval('"tenant_acme".roles_id_seq', 1, true);""",
    ]


@pytest.mark.parametrize("line", [
    f'CREATE TABLE "{NAME}".x (id int);',  # quoted: pg_dump never writes it so, and the rewrite would not match
    f"CREATE TABLE {NAME}_more.x (id int);",  # a longer name it is the start of
    f"COMMENT ON TABLE {NAME}.roles IS 'made in {NAME}';",  # inside data
])
def test_a_dump_naming_the_schema_anywhere_else_is_refused(line):
    with pytest.raises(RuntimeError, match="does not handle"):
        dump_parts(DUMP + line + "\n", NAME)
