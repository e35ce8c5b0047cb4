"""PostgreSQL tenants from the head's final schema: a pg_dump of a template schema at head, renamed per tenant.

The rendered chain replays the chain's history in every new schema: a table created, altered and
partly dropped again costs the server every step. Here the rendered chain runs once per head and
server major version, into a scratch schema `portal_template_<digest>_<random>` (random: two
builders never share one), and `pg_dump --schema` of it (tables, sequences, defaults, constraints,
indexes, rows as INSERTs, alembic_version included) is the head's final state. It is cached in
`<tenant_dir>/.templates/<key>.pg<major>.dump.json` beside the rendered chain; the scratch schema is
dropped. A new tenant runs that dump, the scratch name rewritten to its own schema, as one script in
the transaction that creates its schema.

The rewrite is exact: pg_dump names the schema in `CREATE SCHEMA s;` and in qualified names, bare
(`s.products`, `REFERENCES s.roles(id)`) or inside literals (`nextval('s.products_id_seq'::regclass)`,
`setval('s.products_id_seq', 1, false)`), always followed by a dot. A dump naming it anywhere else
is not used. Its session settings become transaction-local (its timeouts are dropped: the portal's
apply), and its `set_config('search_path', '', false)` is dropped: every name in the dump is
qualified, and the tenant's transaction keeps its own search_path.

No pg_dump on PATH, a pg_dump of another major version than the server, or any failure building
the dump: new tenants run the rendered chain, as before (logged once per process and template).
"""

import hashlib
import json
import logging
import os
import re
import secrets
import subprocess
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tenants.core.engines import display_url
from tenants.core.names import quote_ident, quoted_schema
from tenants.core.pg_schema import PostgresSchemaStorage
from tenants.migrate.file_lock import file_lock
from tenants.migrate.pgdump import pg_dump_major, run_pg_dump
from tenants.migrate.replay import Rendered, one_script

SCRATCH_PREFIX = "portal_template_"
log = logging.getLogger(__name__)

# What this process knows: (template folder, chain key, server major) -> the dump's parts, or None
# (the rendered chain is used there; said once).
_DUMPS: dict[tuple[Path, str, int], tuple[str, ...] | None] = {}

_RESTRICT = re.compile(r"\\(un)?restrict [A-Za-z0-9]+")  # psql meta-commands, not SQL
_HEADER = re.compile(r"-- (Data for )?Name: .*; Type: .*; Schema: .*; Owner: .*")  # names the schema, bare
_SETTING = re.compile(r"SET (\w+) = .*;")
_DROPPED_SETTINGS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "client_encoding")
_SEARCH_PATH = "SELECT pg_catalog.set_config('search_path', '', false);"
_FAILURES = (DBAPIError, RuntimeError, OSError, subprocess.SubprocessError, ValueError)


def head_dump(storage: PostgresSchemaStorage, folder: Path, key: str, rendered: Rendered, *, lock_timeout: float,
              statement_timeout: float) -> tuple[str, ...] | None:
    """Return the dump of the head for the tenant's server, built on first use; None: use the rendered chain.

    `rendered` is the chain from base to head rendered offline: what the scratch schema is built with.
    """
    major = server_major(storage)
    where = (folder, key, major)
    if where not in _DUMPS:
        try:
            _DUMPS[where] = _cached_or_built(storage, where, rendered, lock_timeout, statement_timeout)
        except _FAILURES as e:
            _DUMPS[where] = None
            log.info("new tenants in %s run the chain's history, not a dump of its head: %s",
                     display_url(storage.url), _first_line(e))
    return _DUMPS[where]


def tenant_script(parts: tuple[str, ...], slug: str) -> str:
    """Return the dump with the template schema renamed to the tenant's (it creates the schema)."""
    return quoted_schema(slug).join(parts)


def server_major(storage: PostgresSchemaStorage) -> int:
    """Return the major version of the tenant's server (read by the engine's first connection)."""
    if storage.engine.dialect.server_version_info is None:
        with storage.begin():  # an unreachable server raises StorageUnavailable, as creation would
            pass
    return storage.engine.dialect.server_version_info[0]  # type: ignore[index]


def dump_path(folder: Path, key: str, major: int) -> Path:
    """Return the cache file of the dump of chain `key` for a server of major version `major`."""
    return folder / f"{key}.pg{major}.dump.json"


def _cached_or_built(storage: PostgresSchemaStorage, where: tuple[Path, str, int], rendered: Rendered,
                     lock_timeout: float, statement_timeout: float) -> tuple[str, ...]:
    folder, key, major = where
    path = dump_path(folder, key, major)
    if not path.exists():
        tool = pg_dump_major()
        if tool != major:  # another major's dump may not load here, nor dump this server
            raise RuntimeError("no pg_dump on PATH" if tool is None else
                               f"pg_dump is version {tool}, the server version {major}")
        with file_lock(path.with_suffix(".lock")):
            if not path.exists():  # another process may have built it while we waited
                parts = build_dump(storage, key, one_script(rendered), lock_timeout, statement_timeout)
                scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                scratch.write_text(json.dumps({"parts": parts}))
                os.replace(scratch, path)
                return parts
    return tuple(json.loads(path.read_text())["parts"])


def build_dump(storage: PostgresSchemaStorage, key: str, chain_sql: str, lock_timeout: float,
               statement_timeout: float) -> tuple[str, ...]:
    """Run the chain into a scratch schema, pg_dump it, drop it; return the dump split where its name was.

    The scratch schema is committed (pg_dump reads it from its own session), so a guard transaction
    holds an advisory lock named after it from before its creation to its drop: a build killed half
    way leaves a schema whose lock is free, which the next build drops.
    """
    scratch = f"{SCRATCH_PREFIX}{hashlib.sha256(key.encode()).hexdigest()[:16]}_{secrets.token_hex(4)}"
    quoted = quote_ident(scratch)
    limits = {"lt": f"{int(lock_timeout * 1000)}ms", "st": f"{int(statement_timeout * 1000)}ms"}
    _drop_abandoned(storage, limits)
    with storage.engine.connect() as guard:
        done = guard.begin()
        guard.execute(text("SELECT pg_advisory_xact_lock(:k), set_config('lock_timeout', :lt, true), "
                           "set_config('statement_timeout', :st, true)"), {"k": scratch_key(scratch), **limits})
        try:
            with storage.engine.connect() as conn, conn.begin():
                conn.execute(text("SELECT set_config('search_path', :p, true), set_config('lock_timeout', :lt, true), "
                                  "set_config('statement_timeout', :st, true)"), {"p": quoted, **limits})
                conn.exec_driver_sql("CREATE SCHEMA " + quoted + ";\n" + chain_sql,
                                     execution_options={"no_parameters": True})
            dump = run_pg_dump(storage.url, [f"--schema={scratch}", "--format=plain", "--no-owner", "--no-privileges",
                                             "--no-tablespaces", "--inserts",
                                             f"--lock-wait-timeout={int(lock_timeout * 1000)}"],
                               timeout=statement_timeout)
        finally:  # committed whether the build worked or not
            guard.execute(text("DROP SCHEMA IF EXISTS " + quoted + " CASCADE"))
            done.commit()
    return dump_parts(dump, scratch)


def dump_parts(dump: str, scratch: str) -> tuple[str, ...]:
    """Return the dump as one transaction's script, split at every place it names `scratch`.

    RuntimeError: the dump names the schema in a context the rewrite does not know.
    """
    kept = []
    for line in dump.splitlines():
        if _RESTRICT.fullmatch(line) or _HEADER.fullmatch(line) or line == _SEARCH_PATH:
            continue
        setting = _SETTING.fullmatch(line)
        if setting:
            if setting.group(1) in _DROPPED_SETTINGS:
                continue
            line = "SET LOCAL " + line.removeprefix("SET ")  # nothing may outlive the tenant's transaction
        kept.append(line)
    name = re.escape(scratch)
    parts = re.split(rf"(?<![\w\"]){name}(?=\.)|(?<=^CREATE SCHEMA ){name}(?=;$)", "\n".join(kept), flags=re.M)
    if sum(part.endswith("CREATE SCHEMA ") for part in parts) != 1 or any(scratch in part for part in parts):
        raise RuntimeError(f"the dump names schema {scratch} in a way this rewrite does not handle")
    return tuple(parts)


def _drop_abandoned(storage: PostgresSchemaStorage, limits: dict[str, str]) -> None:
    """Drop scratch schemas of builds that died (their guard's lock is free): a kill leaves none for long."""
    with storage.engine.connect() as conn, conn.begin():
        conn.execute(text("SELECT set_config('lock_timeout', :lt, true), set_config('statement_timeout', :st, true)"),
                     limits)
        found = conn.execute(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p ORDER BY nspname"),
                             {"p": SCRATCH_PREFIX.replace("_", r"\_") + "%"}).scalars().all()
        for name in found:
            if conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": scratch_key(name)}).scalar():
                conn.execute(text("DROP SCHEMA IF EXISTS " + quote_ident(name) + " CASCADE"))


def scratch_key(scratch: str) -> int:
    """Return the advisory-lock key a build holds while its scratch schema exists (signed 64-bit)."""
    digest = hashlib.blake2b(f"tenant-portal-template:{scratch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _first_line(error: Exception) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
