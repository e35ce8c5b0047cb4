"""Backups and restore on real PostgreSQL and SQLite: round trips, ledger records, failures, pruning."""

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tenants.core.clock import utcnow
from tenants.core.control_schema import backups, migration_runs
from tenants.core.ledger import ledger_versions
from tenants.fleet.create import create_tenant
from tenants.migrate.migrator import current_revision, migrate_tenant
from tenants.safety.backups.restore import restore_tenant
from tenants.safety.backups.store import backup_tenant, list_backups, prune_backups
from tenants.safety.errors import BackupFailed, BackupNotFound

TABLES = {"roles": "id", "users": "id", "users_roles": "user_id, role_id", "products": "id"}


def fill(storage) -> None:  # type: ignore[no-untyped-def]
    """Put a few rows, with awkward values, in every tenant table."""
    with storage.begin() as conn:
        conn.execute(text("INSERT INTO roles (name, description, console_access) VALUES "
                          "('admin', 'tab\there, newline\nthere, back\\slash', true), ('staff', '', false)"))
        conn.execute(text("INSERT INTO users (email, full_name, password_hash, active, created_at) VALUES "
                          "('a@x.org', 'Ann Émile', 'h', true, '2026-01-02 03:04:05+00'), "
                          "('b@x.org', 'Bob', 'h', false, '2026-02-03 04:05:06+00')"))
        conn.execute(text("INSERT INTO users_roles (user_id, role_id) VALUES (1, 1), (2, 2), (1, 2)"))
        conn.execute(text("INSERT INTO products (name, sku, price, stock, active, created_at) VALUES "
                          "('Widget', 'W-1', 9.99, 3, true, '2026-03-04 05:06:07+00'), "
                          "('Gadget', 'G-1', 0, 0, false, '2026-03-04 05:06:07+00')"))


def snapshot(storage) -> dict:  # type: ignore[no-untyped-def]
    """Return every row of every tenant table, ordered by key."""
    with storage.begin() as conn:
        return {t: [tuple(r) for r in conn.execute(text("SELECT * FROM " + t + " ORDER BY " + key))]
                for t, key in TABLES.items()}


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    """conftest's settings with a 0.5 s lock timeout: only the lock-timeout test waits for it, and
    proves "busy" as well after 0.5 s as after 2 (no other backup here meets a held lock)."""
    return replace(settings, lock_timeout=0.5)


@pytest.fixture
def acme(tenancy):  # type: ignore[no-untyped-def]
    create_tenant(tenancy, "acme")
    storage = tenancy.storage("acme")
    fill(storage)
    return storage


# Every backup method: SQLite's backup API, pg_dump, and the COPY export PostgreSQL falls back to.
METHODS = pytest.mark.parametrize("backend,method", [("sqlite", "auto"), ("postgresql", "auto"),
                                                     ("postgresql", "copy")])


@METHODS
def test_backup_and_restore_round_trip(tenancy, acme, backend, method, tmp_path):
    before = snapshot(acme)
    backup = backup_tenant(tenancy, "acme", "run-1", directory=tmp_path / "backups", method=method)
    assert backup.revision == "0003" and backup.size_bytes > 0
    assert Path(backup.path).parent == tmp_path / "backups" / "run-1" and Path(backup.path).name.startswith("acme-")
    dumps = method == "auto" and shutil.which("pg_dump")  # no pg_dump on the machine: the COPY export
    assert backup.method == {"sqlite": "sqlite", "postgresql": "pg_dump" if dumps else "copy"}[backend]

    # Damage the tenant: rows gone, rows added, and the schema moved back two revisions.
    with acme.begin() as conn:
        conn.execute(text("DELETE FROM users_roles"))
        conn.execute(text("UPDATE users SET full_name = 'changed'"))
    migrate_tenant(acme, tenancy.scripts, "0001", downgrade=True)
    assert current_revision(acme) == "0001"

    outcome = restore_tenant(tenancy, "acme", backup).outcome
    assert (outcome.from_revision, outcome.to_revision) == ("0001", "0003")
    assert current_revision(acme) == "0003"
    assert snapshot(acme) == before
    assert ledger_versions(tenancy.control_engine)["acme"] == "0003"
    with tenancy.control_engine.connect() as conn:
        run = conn.execute(select(migration_runs).where(migration_runs.c.kind == "restore-tenant")).one()
    assert (run.status, run.target, run.tenants_ok) == ("ok", "0003", 1)
    # Sequences come back too: a new row does not collide with a restored one.
    with acme.begin() as conn:
        conn.execute(text("INSERT INTO roles (name, description) VALUES ('new', '')"))
        assert conn.execute(text("SELECT max(id) FROM roles")).scalar() == 3


def test_failed_backup_leaves_nothing_and_says_why(tenancy, acme, tmp_path):
    acme.drop()
    with pytest.raises(BackupFailed) as failed:
        backup_tenant(tenancy, "acme", "run-2", directory=tmp_path / "backups")
    assert failed.value.slug == "acme" and "missing" in str(failed.value)
    assert list_backups(tenancy) == []
    assert not any(p.is_file() for p in (tmp_path / "backups").rglob("*"))


@METHODS
def test_backup_of_a_locked_tenant_fails_after_the_lock_timeout(tenancy, acme, backend, method, tmp_path):
    if backend == "postgresql":
        holder = acme.engine.connect()
        trans = holder.begin()
        holder.execute(text("LOCK TABLE tenant_acme.products IN ACCESS EXCLUSIVE MODE"))
    else:
        import sqlite3

        holder = sqlite3.connect(acme.path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(BackupFailed) as failed:
            backup_tenant(tenancy, "acme", "run-3", directory=tmp_path / "backups", method=method)
    finally:
        if backend == "postgresql":
            trans.rollback()
        holder.close()
    assert "lock" in str(failed.value) or "timeout" in str(failed.value)
    assert list_backups(tenancy) == []
    assert not any(p.is_file() for p in (tmp_path / "backups").rglob("*"))


def test_restore_refuses_a_backup_of_another_tenant(tenancy, acme, tmp_path):
    create_tenant(tenancy, "globex")
    backup = backup_tenant(tenancy, "globex", None, directory=tmp_path / "backups")
    with pytest.raises(BackupNotFound, match="belongs to tenant 'globex'"):
        restore_tenant(tenancy, "acme", backup)
    Path(backup.path).unlink() if Path(backup.path).is_file() else None
    with pytest.raises(BackupNotFound, match="missing"):
        restore_tenant(tenancy, "globex", backup)


def test_prune_removes_only_old_backups(tenancy, acme, tmp_path):
    old = backup_tenant(tenancy, "acme", "old-run", directory=tmp_path / "backups")
    new = backup_tenant(tenancy, "acme", "new-run", directory=tmp_path / "backups")
    with tenancy.control_engine.begin() as conn:
        conn.execute(backups.update().where(backups.c.id == old.id).values(created_at=utcnow() - timedelta(days=40)))
    removed = prune_backups(tenancy, keep_days=30)
    assert [b.id for b in removed] == [old.id]
    assert not Path(old.path).exists() and not (tmp_path / "backups" / "old-run").exists()
    assert Path(new.path).exists() and [b.id for b in list_backups(tenancy, "acme")] == [new.id]


def test_restore_backs_up_the_current_state_first_so_it_can_be_undone(tenancy, acme, tmp_path):
    backup = backup_tenant(tenancy, "acme", "run-3", directory=tmp_path / "backups")
    with acme.begin() as conn:  # written after the backup: a restore would lose it
        conn.execute(text("DELETE FROM users_roles WHERE user_id = 2"))
        conn.execute(text("INSERT INTO products (name, sku, price, stock, active, created_at) "
                          "VALUES ('Late', 'L-1', 1, 1, true, '2026-05-06 07:08:09+00')"))
    later = snapshot(acme)

    restored = restore_tenant(tenancy, "acme", backup)
    assert restored.kept is not None and restored.kept.id != backup.id and restored.kept.run_id is None
    assert snapshot(acme) != later
    restore_tenant(tenancy, "acme", restored.kept, keep_current=False)  # the undo
    assert snapshot(acme) == later
    assert [b.id for b in list_backups(tenancy, "acme")] == [restored.kept.id, backup.id]


def test_restore_refuses_when_the_current_state_cannot_be_kept(tenancy, acme, tmp_path, monkeypatch):
    backup = backup_tenant(tenancy, "acme", "run-4", directory=tmp_path / "backups")
    with acme.begin() as conn:
        conn.execute(text("DELETE FROM users_roles"))
    damaged = snapshot(acme)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")
    monkeypatch.setenv("PORTAL_BACKUP_DIR", str(blocker))

    with pytest.raises(BackupFailed, match="nothing was restored"):
        restore_tenant(tenancy, "acme", backup)
    assert snapshot(acme) == damaged
    with tenancy.control_engine.connect() as conn:
        assert conn.execute(select(migration_runs).where(migration_runs.c.kind == "restore-tenant")).all() == []

    restored = restore_tenant(tenancy, "acme", backup, keep_current=False)  # the operator's explicit choice
    assert restored.kept is None and snapshot(acme)["users_roles"] != []
