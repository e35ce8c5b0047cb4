"""New tenants at head whatever the chain's length: the chain is run once per head, and its result copied.

- SQLite: a template file at head, built once per chain under a file lock (to a temporary name,
  checked with `PRAGMA integrity_check`, then renamed into place), copied byte for byte into
  each new tenant's file.
- PostgreSQL: the chain from base to head rendered once in Alembic's offline mode (the replay
  path of upgrades) and cached in a file; run once into a scratch schema and dumped with pg_dump
  (pg_template.py), it gives the head's final schema, which each new schema runs as one script in
  its locked transaction (the rendered chain where there is no such dump). PostgreSQL cannot clone
  a schema; the dump is PostgreSQL's own account of the schema Alembic built, rows included.

Templates live in `<tenant_dir>/.templates/`, named by the head revision and a digest of every
revision file's source: a template of another head, or of an edited revision, is never used.
A chain that cannot be rendered offline (a revision reads the database) has no PostgreSQL
template: new schemas run Alembic online, as before.
"""

import hashlib
import json
import os
import sqlite3
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from tenants.core.engines import display_url
from tenants.core.errors import StorageUnavailable, TenantExists
from tenants.core.names import quoted_schema, schema_name
from tenants.core.pg_schema import PostgresSchemaStorage
from tenants.core.sqlite_file import SqliteFileStorage
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.migrate import pg_template
from tenants.migrate.errors import MigrationFailed, MigrationTimeout
from tenants.migrate.file_lock import file_lock
from tenants.migrate.migrator import TIMEOUT_SQLSTATES, MigrationOutcome, migrate_tenant
from tenants.migrate.plan import runs_outside_transaction
from tenants.migrate.replay import VERSION_TABLE, Rendered, batches, one_script, render_range

TEMPLATE_DIR = ".templates"
DUPLICATE_SCHEMA = "42P06"
# The scratch tenant a SQLite template is built as (its file lives in the template folder, apart from tenants).
TEMPLATE_SLUG = "tenant_template"

# Called with the dialect before a template is built: the creation gate (raise to refuse).
TemplateCheck = Callable[[str], object]


# Per loaded chain: its key and its templates, {"key": str, (folder, dialect): Template | None}.
_KNOWN: "weakref.WeakKeyDictionary[ScriptDirectory, dict]" = weakref.WeakKeyDictionary()
_UNKNOWN = object()


@dataclass(frozen=True)
class Template:
    """The head of the chain, ready to copy (SQLite: `path`) or to run (PostgreSQL: `rendered`, and its dump).

    PostgreSQL: `folder` and `key` find the dump of the head per server major version (pg_template).
    """

    dialect: str
    head: str
    path: Path | None = None
    rendered: Rendered | None = None
    folder: Path | None = None
    key: str = ""


def chain_key(scripts: ScriptDirectory, head: str) -> str:
    """Return the name of the chain's templates: its head plus a digest of every revision file."""
    digest = hashlib.sha256()
    for script in sorted(scripts.walk_revisions(), key=lambda s: s.revision):
        digest.update(script.revision.encode() + b"\0" + Path(script.path).read_bytes() + b"\0")
    return f"{head}-{digest.hexdigest()[:16]}"


def head_template(tenancy: Tenancy, dialect: str, check: TemplateCheck) -> Template | None:
    """Return the template at head for `dialect`, building it (after `check`) if it does not exist yet.

    None: the chain is empty, or its head cannot be rendered offline (PostgreSQL: run Alembic online).
    """
    head = tenancy.head()
    if head is None:
        return None
    folder = Path(tenancy.settings.tenant_dir) / TEMPLATE_DIR
    # A process loads its chain once (Tenancy.scripts), so what it learned of that chain's templates holds.
    known = _KNOWN.setdefault(tenancy.scripts, {})
    found = known.get((folder, dialect), _UNKNOWN)
    if found is not _UNKNOWN and (found is None or found.path is None or found.path.exists()):
        return found
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # PORTAL_TENANT_DIR is a file, not writable, or on a read-only disk
        raise StorageUnavailable(f"cannot use the folder {str(folder)!r} for tenant templates: "
                                 f"{e.strerror or e}") from e
    if "key" not in known:
        known["key"] = chain_key(tenancy.scripts, head)
    if dialect == "sqlite":
        found = _sqlite_template(tenancy, folder, known["key"], head, check)
    else:
        found = _postgres_template(tenancy, folder, known["key"], head, check)
    known[(folder, dialect)] = found
    return found


def _sqlite_template(tenancy: Tenancy, folder: Path, key: str, head: str, check: TemplateCheck) -> Template:
    path = folder / f"{key}.sqlite3"
    if not path.exists():
        with file_lock(folder / f"{key}.sqlite3.lock"):
            if not path.exists():  # another process may have built it while we waited
                check("sqlite")
                _build_sqlite(tenancy, path, head)
                remove_stale(folder, key)
    return Template("sqlite", head, path=path)


def _build_sqlite(tenancy: Tenancy, path: Path, head: str) -> None:
    """Run the chain into a temporary file, check it, and rename it to `path` (atomic on POSIX)."""
    scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    storage = SqliteFileStorage(TEMPLATE_SLUG, scratch, tenancy.engines)
    storage.drop()  # a scratch file left by a killed build of this pid number
    try:
        storage.create()
        s = tenancy.settings
        migrate_tenant(storage, tenancy.scripts, head, lock_timeout=s.lock_timeout,
                       statement_timeout=s.statement_timeout)
        storage.engine.dispose()
        with sqlite3.connect(scratch) as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        conn.close()
        if verdict != "ok":
            raise MigrationFailed(TEMPLATE_SLUG, head, f"template failed PRAGMA integrity_check: {verdict}")
        os.replace(scratch, path)
    finally:
        storage.drop()


def remove_stale(folder: Path, key: str) -> None:
    """Delete the files in `folder` of chains other than `key` (templates, lint verdicts): only the current is used."""
    for old in folder.iterdir():
        # Locks stay (another process may hold one); so do scratch files another build is writing.
        if not old.name.startswith(key) and not old.name.endswith((".lock", ".tmp")):
            old.unlink(missing_ok=True)


def _postgres_template(tenancy: Tenancy, folder: Path, key: str, head: str, check: TemplateCheck) -> Template | None:
    path = folder / f"{key}.postgresql.json"
    if path.exists():
        return Template("postgresql", head, rendered=[(rev, sql) for rev, sql in json.loads(path.read_text())],
                        folder=folder, key=key)
    check("postgresql")
    scripts = tenancy.scripts
    chain = [script.revision for script in scripts.walk_revisions()]
    if any(runs_outside_transaction(scripts, revision) for revision in chain):
        return None  # such a revision cannot share the new schema's one transaction: Alembic online
    try:
        rendered = render_range(scripts, "postgresql", None, head)
    except Exception:  # needs a live connection (op.get_bind(), reflection): Alembic online
        return None
    scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    scratch.write_text(json.dumps(rendered))
    os.replace(scratch, path)  # two processes writing the same rendering: either file is right
    remove_stale(folder, key)
    return Template("postgresql", head, rendered=rendered, folder=folder, key=key)


def create_from(storage: TenantStorage, template: Template | None) -> bool:
    """Create the tenant's file as a copy of the SQLite template, or its empty schema; return whether it did.

    False: a PostgreSQL schema with a rendered template is created in the transaction that brings
    it to head (bring_to_head), so a failure or a kill leaves no schema behind.
    """
    if template is not None and isinstance(storage, SqliteFileStorage):
        storage.create(template=template.path)
        return True
    if template is not None and template.rendered is not None and isinstance(storage, PostgresSchemaStorage):
        return False
    storage.create()
    return True


def bring_to_head(storage: TenantStorage, scripts: ScriptDirectory, template: Template | None, *,
                  lock_timeout: float, statement_timeout: float) -> MigrationOutcome:
    """Bring a new tenant to head: its schema and the head's dump (else the rendered chain) in one transaction,
    the copied file checked, or Alembic online."""
    if template is None:
        return migrate_tenant(storage, scripts, "head", lock_timeout=lock_timeout, statement_timeout=statement_timeout)
    started = time.perf_counter()
    if template.rendered is not None and isinstance(storage, PostgresSchemaStorage):
        create = "CREATE SCHEMA " + quoted_schema(storage.slug) + ";\n"
        dump = pg_template.head_dump(storage, template.folder, template.key, template.rendered,
                                     lock_timeout=lock_timeout, statement_timeout=statement_timeout
                                     ) if template.folder else None
        try:
            # One round trip: the head's final schema (else the whole chain), whatever the chain's length.
            script = (pg_template.tenant_script(dump, storage.slug) if dump
                      else create + one_script(template.rendered))
            _run(storage, [(None, script)], template.head, lock_timeout, statement_timeout)
        except MigrationFailed as e:
            if isinstance(e, MigrationTimeout):
                raise
            # Rolled back: run the chain revision by revision, so an error names the revision that fails.
            _run(storage, [(None, create), *batches(template.rendered)], template.head, lock_timeout, statement_timeout)
    else:
        with storage.begin(exclusive=True, lock_timeout=lock_timeout) as conn:  # the copy, read under the tenant lock
            _check_head(storage, conn, template.head)
    applied = [revision for revision, _ in template.rendered or () if revision != VERSION_TABLE]
    return MigrationOutcome(storage.slug, None, template.head, applied, (time.perf_counter() - started) * 1000)


def _run(storage: TenantStorage, scripts: list[tuple[str | None, str]], head: str, lock_timeout: float,
         statement_timeout: float) -> None:
    """Run (revision, SQL) scripts in one transaction under the tenant's lock; commit only at `head`."""
    failing: str | None = None
    try:
        with storage.begin(exclusive=True, revisions=True, lock_timeout=lock_timeout,
                           timeouts=(lock_timeout, statement_timeout)) as conn:
            for revision, script in scripts:
                failing = None if revision == VERSION_TABLE else revision
                conn.exec_driver_sql(script, execution_options={"no_parameters": True})
            _check_head(storage, conn, head)
    except DBAPIError as e:
        code = getattr(e.orig, "pgcode", None)
        if code == DUPLICATE_SCHEMA:
            where = f"schema {schema_name(storage.slug)} already exists in {display_url(storage.url)}"
            raise TenantExists(where) from e
        error_class = MigrationTimeout if code in TIMEOUT_SQLSTATES else MigrationFailed
        raise error_class(storage.slug, failing, _first_line(e)) from e


def _check_head(storage: TenantStorage, conn: Connection, head: str) -> None:
    """Raise MigrationFailed (rolling the transaction back) unless the new tenant's alembic_version is `head`."""
    reached = conn.exec_driver_sql("SELECT max(version_num) FROM alembic_version").scalar()
    if reached != head:
        raise MigrationFailed(storage.slug, head, f"the new tenant is at {reached}, not at the head")


def _first_line(error: DBAPIError) -> str:
    lines = str(error.orig).strip().splitlines()
    return lines[0] if lines else type(error.orig).__name__
