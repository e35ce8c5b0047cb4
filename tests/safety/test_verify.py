"""verify-chain: a lossy or irreversible revision is named; the real chain holds on both dialects."""

import json
from contextlib import contextmanager

import psycopg2
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from tenants.core.engines import Engines
from tenants.core.settings import PROJECT_ROOT
from tenants.core.sqlite_file import SqliteFileStorage
from tenants.safety.verify import verify_storage
from tests.chains import chain_with
from tests.conftest import run_manage

LOSSY = {"0004": ("0003", "op.execute('DELETE FROM users_roles')")}
IRREVERSIBLE = {"0004": ("0003", "op.add_column('products', sa.Column('weight', sa.Integer(), nullable=True))")}


def dialects_for(settings) -> list[str]:  # type: ignore[no-untyped-def]
    return ["postgresql", "sqlite"] if settings.control_url.startswith("postgresql") else ["sqlite"]


def args(settings) -> list[str]:  # type: ignore[no-untyped-def]
    return [part for d in dialects_for(settings) for part in ("--dialect", d)]


def scratch_schemas(settings) -> list[str]:  # type: ignore[no-untyped-def]
    if not settings.control_url.startswith("postgresql"):
        return []
    conn = psycopg2.connect(make_url(settings.control_url).render_as_string(hide_password=False))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant_verify_%'")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def test_the_real_chain_holds_on_every_dialect(settings, cli_env, tenancy):
    result = run_manage(["verify-chain", "--json", *args(settings)], cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = json.loads(result.stdout)
    assert [(v["dialect"], v["ok"], v["steps"]) for v in verdicts] == [(d, True, 9) for d in dialects_for(settings)]
    assert scratch_schemas(settings) == []


@pytest.mark.slow
def test_a_revision_that_deletes_rows_is_named(settings, cli_env, tenancy, tmp_path):
    env = {**cli_env, "PORTAL_REVISION_DIR": str(chain_with(tmp_path, LOSSY))}
    result = run_manage(["verify-chain", *args(settings)], env)
    assert result.returncode == 1, result.stdout + result.stderr
    for dialect in dialects_for(settings):
        assert f"{dialect}: revision 0004 (upgrade) breaks the chain: lost-rows" in result.stdout
    assert "users_roles 2 -> 0 rows" in result.stdout
    assert scratch_schemas(settings) == []


@pytest.mark.slow
def test_a_downgrade_that_does_not_restore_the_schema_is_named(settings, cli_env, tenancy, tmp_path):
    env = {**cli_env, "PORTAL_REVISION_DIR": str(chain_with(tmp_path, IRREVERSIBLE))}
    result = run_manage(["verify-chain", *args(settings)], env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "revision 0004 (downgrade) breaks the chain: schema" in result.stdout and "weight" in result.stdout


class ForeignKeysEnforced(SqliteFileStorage):
    """A SQLite tenant migrated as before the rebuild fix: foreign keys stay on during revisions."""

    @contextmanager
    def begin(self, *, revisions: bool = False, **kwargs):  # type: ignore[no-untyped-def, override]
        with super().begin(**kwargs) as conn:
            yield conn


def test_it_catches_the_0003_cascade_of_a_sqlite_rebuild_with_foreign_keys_on(tmp_path):
    engines = Engines()
    storage = ForeignKeysEnforced("scratch", tmp_path / "scratch.sqlite3", engines)
    storage.create()
    verdict = verify_storage(storage, ScriptDirectory(str(PROJECT_ROOT / "migrations")))
    engines.dispose()
    assert verdict.broken is not None
    assert (verdict.broken.revision, verdict.broken.kind) == ("0003", "lost-rows")
    assert "users_roles" in verdict.broken.detail
