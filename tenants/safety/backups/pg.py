"""Back up and restore one PostgreSQL tenant schema: pg_dump when it fits the server, else COPY.

Both restores run in ONE transaction under the tenant's advisory lock: the schema is dropped
and rebuilt, its rows loaded and its alembic_version put back, or nothing changes at all.
"""

import json
import re
from graphlib import TopologicalSorter
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from tenants.core.names import quote_ident, quoted_schema, schema_name
from tenants.core.pg_schema import PostgresSchemaStorage
from tenants.migrate import driver
from tenants.migrate.migrator import alembic_options, resolve_target
from tenants.migrate.pgdump import pg_dump_major, run_pg_dump

TABLES_SQL = text("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  "WHERE n.nspname = :s AND c.relkind IN ('r', 'p') ORDER BY c.relname")
SEQUENCES_SQL = text("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE n.nspname = :s AND c.relkind = 'S' ORDER BY c.relname")
COLUMNS_SQL = text("SELECT a.attname FROM pg_attribute a WHERE a.attrelid = format('%I.%I', :s, :t)::regclass "
                   "AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum")
FOREIGN_KEYS_SQL = text("SELECT child.relname, parent.relname FROM pg_constraint k "
                        "JOIN pg_class child ON child.oid = k.conrelid "
                        "JOIN pg_class parent ON parent.oid = k.confrelid "
                        "JOIN pg_namespace n ON n.oid = child.relnamespace WHERE k.contype = 'f' AND n.nspname = :s")
COPY_LINE = re.compile(r"^COPY (\S+) \((.*)\) FROM stdin;$")


def pg_dump_usable(conn: Connection) -> bool:
    """Return whether the local pg_dump can dump this server (its major version is not older)."""
    tool = pg_dump_major()
    server = int(conn.execute(text("SHOW server_version_num")).scalar()) // 10000
    return tool is not None and tool >= server


def dump_schema(storage: PostgresSchemaStorage, dest: Path, lock_timeout: float) -> str | None:
    """Write `pg_dump --schema` of the tenant to `dest` (plain SQL); return the revision it holds."""
    run_pg_dump(storage.url, [f"--schema={schema_name(storage.slug)}", "--format=plain", "--no-owner",
                              "--no-privileges", f"--lock-wait-timeout={int(lock_timeout * 1000)}", f"--file={dest}"],
                timeout=3600)
    return _dump_revision(dest)


def _dump_revision(path: Path) -> str | None:
    with open(path, encoding="utf-8") as f:
        lines = iter(f)
        for line in lines:
            match = COPY_LINE.match(line.rstrip("\n"))
            if match and match.group(1).endswith(".alembic_version"):
                value = next(lines).rstrip("\n")
                return None if value == "\\." else value
    return None


def export_copy(storage: PostgresSchemaStorage, dest: Path, lock_timeout: float) -> str | None:
    """Export every table of the tenant with COPY into `dest/` plus a manifest; return the revision."""
    dest.mkdir(parents=True)
    schema, manifest = schema_name(storage.slug), {"format": "copy", "slug": storage.slug, "tables": [],
                                                   "sequences": []}
    with storage.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")  # one snapshot for every table
        with conn.begin():
            storage.set_timeouts(conn, lock_timeout, 3600)
            cursor = conn.connection.driver_connection.cursor()
            for table in conn.execute(TABLES_SQL, {"s": schema}).scalars():
                columns = list(conn.execute(COLUMNS_SQL, {"s": schema, "t": table}).scalars())
                with open(dest / f"{table}.copy", "w", encoding="utf-8") as f:
                    copy_out = "COPY " + _qualified(storage, table) + " (" + _columns(columns) + ") TO STDOUT"
                    cursor.copy_expert(copy_out, f)
                manifest["tables"].append({"name": table, "columns": columns, "file": f"{table}.copy"})
            for seq in conn.execute(SEQUENCES_SQL, {"s": schema}).scalars():
                row = conn.execute(text("SELECT last_value, is_called FROM " + _qualified(storage, seq))).one()
                manifest["sequences"].append({"name": seq, "last_value": row[0], "is_called": row[1]})
            revision = conn.execute(text("SELECT version_num FROM " + _qualified(storage, "alembic_version"))).scalar()
    manifest["revision"] = revision
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return revision


def _qualified(storage: PostgresSchemaStorage, name: str) -> str:
    return quoted_schema(storage.slug) + "." + quote_ident(name)


def _columns(columns: list[str]) -> str:
    return ", ".join(quote_ident(c) for c in columns)


def restore_dump(storage: PostgresSchemaStorage, conn: Connection, path: Path) -> None:
    """Replace the tenant's schema by a plain pg_dump file, inside the caller's transaction."""
    conn.execute(text("DROP SCHEMA IF EXISTS " + quoted_schema(storage.slug) + " CASCADE"))
    cursor = conn.connection.driver_connection.cursor()
    chunk: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            match = COPY_LINE.match(line.rstrip("\n"))
            if match:
                _execute_chunk(cursor, chunk)
                data = []
                for row in f:
                    if row == "\\.\n" or row == "\\.":
                        break
                    data.append(row)
                cursor.copy_expert(line.rstrip("\n").removesuffix(" FROM stdin;") + " FROM STDIN",
                                   _Lines(data))
            elif not line.startswith("\\"):  # psql meta-commands (\restrict ...) are not SQL
                chunk.append(line)
    _execute_chunk(cursor, chunk)
    # The dump changes session settings (search_path = ''); none may outlive this transaction.
    cursor.execute("RESET ALL")


class _Lines:
    """A read()-able view of COPY data lines for psycopg2's copy_expert."""

    def __init__(self, lines: list[str]) -> None:
        self._data = "".join(lines)
        self._pos = 0

    def read(self, size: int = -1) -> str:
        end = len(self._data) if size is None or size < 0 else self._pos + size
        part, self._pos = self._data[self._pos:end], min(end, len(self._data))
        return part

    def readline(self, size: int = -1) -> str:
        end = self._data.find("\n", self._pos)
        return self.read(len(self._data) - self._pos if end < 0 else end + 1 - self._pos)


def _execute_chunk(cursor, chunk: list[str]) -> None:  # type: ignore[no-untyped-def]
    sql = "".join(line for line in chunk if not line.startswith("--"))
    chunk.clear()
    if sql.strip():
        cursor.execute(sql)


def restore_copy(storage: PostgresSchemaStorage, conn: Connection, path: Path, scripts: ScriptDirectory) -> None:
    """Rebuild the tenant's schema from the chain at the backup's revision, then load its rows."""
    manifest = json.loads((path / "manifest.json").read_text())
    schema = schema_name(storage.slug)
    conn.execute(text("DROP SCHEMA IF EXISTS " + quoted_schema(storage.slug) + " CASCADE"))
    conn.execute(text("CREATE SCHEMA " + quoted_schema(storage.slug)))
    target = resolve_target(scripts, manifest["revision"])
    if target is not None:
        driver.run_steps(conn, driver.steps_between(scripts, None, target), alembic_options(storage))
    tables = {t["name"]: t for t in manifest["tables"] if t["name"] != "alembic_version"}
    if tables:  # rows a data revision inserted are replaced by the backup's
        conn.execute(text("TRUNCATE " + ", ".join(_qualified(storage, t) for t in sorted(tables))))
    order = TopologicalSorter({t: set() for t in tables})
    for child, parent in conn.execute(FOREIGN_KEYS_SQL, {"s": schema}):
        if child in tables and parent in tables and child != parent:
            order.add(child, parent)
    cursor = conn.connection.driver_connection.cursor()
    for name in order.static_order():
        table = tables[name]
        with open(path / table["file"], encoding="utf-8") as f:
            cursor.copy_expert("COPY " + _qualified(storage, name) + " (" + _columns(table["columns"]) + ") FROM STDIN",
                               f)
    for seq in manifest["sequences"]:
        conn.execute(text("SELECT setval(format('%I.%I', :s, :q)::regclass, :v, :c)"),
                     {"s": schema, "q": seq["name"], "v": seq["last_value"], "c": seq["is_called"]})
