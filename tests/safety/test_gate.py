"""The lint gate inside upgrade-all-tenants: stop before any tenant is touched, back up first."""

import json
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select, text

from manage import operator_cli
from tenants.core.control_schema import migration_runs
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.migrate.control import ensure_control
from tenants.migrate.migrator import current_revision
from tenants.safety.backups.restore import restore_tenant
from tenants.safety.backups.store import list_backups
from tenants.safety.gate import LINT_DIR
from tests.chains import chain_with
from tests.conftest import run_manage
from tests.factories import make_product

cli = operator_cli()  # the whole CLI, as `manage.py` builds it

DROP_NAME = {"0004": ("0003", "with op.batch_alter_table('products') as batch:\n    batch.drop_column('name')")}
PLAIN_INDEX = {"0004": ("0003", "op.create_index('ix_products_name', 'products', ['name'])")}


def fleet(settings, tmp_path, revisions) -> tuple[Tenancy, dict]:
    """Two tenants at 0003 with a product each, and a chain whose 0004 is pending for both."""
    current = Tenancy(settings)
    ensure_control(current)
    for slug in ("acme", "globex"):
        create_tenant(current, slug)
        make_product(current.storage(slug), sku=f"{slug}-1", name=f"{slug} anvil")
    current.close()
    chain = chain_with(tmp_path, revisions)
    tenancy = Tenancy(replace(settings, revision_dir=chain))
    return tenancy, {"PORTAL_REVISION_DIR": str(chain)}


def runs(tenancy: Tenancy) -> int:
    with tenancy.control_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(migration_runs)
                            .where(migration_runs.c.kind == "upgrade")).scalar()


def test_data_loss_stops_the_run_before_any_tenant_is_touched(settings, cli_env, tmp_path):
    tenancy, env = fleet(settings, tmp_path, DROP_NAME)
    before = runs(tenancy)
    result = run_manage(["upgrade-all-tenants"], {**cli_env, **env})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "drop-column" in result.stderr and "products.name" in result.stderr
    assert [current_revision(tenancy.storage(s)) for s in ("acme", "globex")] == ["0003", "0003"]
    assert runs(tenancy) == before, "a refused run records nothing"
    tenancy.close()


def test_allowed_data_loss_backs_every_tenant_up_first_and_restore_brings_rows_back(settings, runner, tmp_path):
    tenancy, env = fleet(settings, tmp_path, DROP_NAME)
    # manage.py's `cli` in-process; the other tests here run it as a real process (exit 2, 1).
    result = runner.invoke(cli, ["upgrade-all-tenants", "--allow-destructive", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {r["slug"]: r["status"] for r in report["results"]} == {"acme": "ok", "globex": "ok"}
    backups = list_backups(tenancy)
    assert sorted(b.tenant_slug for b in backups) == ["acme", "globex"]
    assert all(b.revision == "0003" and b.run_id == report["run_id"] for b in backups)
    acme = next(b for b in backups if b.tenant_slug == "acme")
    restore_tenant(tenancy, "acme", acme)
    storage = tenancy.storage("acme")
    assert current_revision(storage) == "0003"
    with storage.begin() as conn:
        assert conn.execute(text("SELECT sku, name FROM products")).all() == [("acme-1", "acme anvil")]
    tenancy.close()


def test_a_failed_backup_skips_that_tenant_and_changes_nothing(settings, cli_env, tmp_path):
    tenancy, env = fleet(settings, tmp_path, DROP_NAME)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")
    result = run_manage(["upgrade-all-tenants", "--allow-destructive", "--json"],
                        {**cli_env, **env, "PORTAL_BACKUP_DIR": str(blocker)})
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert {r["status"] for r in report["results"]} == {"failed"}
    assert all("backup of tenant" in r["error"] and "skipped" in r["error"] for r in report["results"])
    assert [current_revision(tenancy.storage(s)) for s in ("acme", "globex")] == ["0003", "0003"]
    tenancy.close()


def test_lock_hazards_warn_and_strict_stops(settings, runner, tmp_path):
    tenancy, env = fleet(settings, tmp_path, PLAIN_INDEX)
    strict = runner.invoke(cli, ["upgrade-all-tenants", "--strict"], env=env)  # manage.py's `cli` in-process
    if tenancy.storage("acme").dialect == "postgresql":
        assert strict.exit_code == 2 and "index-lock" in strict.stderr
        assert current_revision(tenancy.storage("acme")) == "0003"
    else:  # SQLite has no concurrent index builds: nothing to stop
        assert strict.exit_code == 0
    result = runner.invoke(cli, ["upgrade-all-tenants"], env=env)
    assert result.exit_code == 0, result.output
    assert current_revision(tenancy.storage("acme")) == "0004"
    tenancy.close()


def test_a_remembered_verdict_stops_the_next_run_too_without_linting_again(settings, cli_env, tmp_path):
    # The second run answers from <tenant_dir>/.lint: pglast is not even imported, and the run is refused all the same.
    tenancy, env = fleet(settings, tmp_path, DROP_NAME)
    imported = []
    for _ in range(2):
        result = run_manage(["upgrade-all-tenants"], {**cli_env, **env, "PYTHONPROFILEIMPORTTIME": "1"})
        assert result.returncode == 2 and "drop-column" in result.stderr, result.stdout + result.stderr
        imported.append(" pglast" in result.stderr)
    assert imported == [True, False]
    assert list((Path(tenancy.settings.tenant_dir) / LINT_DIR).glob("*.json"))
    assert [current_revision(tenancy.storage(s)) for s in ("acme", "globex")] == ["0003", "0003"]
    tenancy.close()
