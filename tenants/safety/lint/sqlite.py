"""SQLite's own hazards, which PostgreSQL's rendering cannot show.

SQLite batch revisions can only be rendered against a live database (they reflect the table
they rebuild), so each revision of the chain really runs, in order, on a scratch in-memory
SQLite database, with the statements it sends recorded. A revision that fails there fails on
every SQLite tenant; a default or statement that calls a function SQLite lacks fails when rows
arrive; a table rebuild (copy, DROP, rename) of a table that others reference with ON DELETE
CASCADE empties them wherever foreign keys are enforced during the migration.
"""

import re

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event, text

from tenants.migrate import driver
from tenants.safety.lint.hazards import Hazard, make_hazard
from tenants.safety.lint.render import chain_until

# PostgreSQL functions revisions use that SQLite does not have (called as name(...)).
POSTGRES_FUNCTIONS = ("now", "gen_random_uuid", "uuid_generate_v4", "clock_timestamp", "statement_timestamp",
                      "transaction_timestamp", "to_char", "to_timestamp", "date_trunc", "nextval", "currval",
                      "current_setting", "string_agg", "array_agg", "jsonb_build_object", "regexp_replace")
_FUNCTION = re.compile(r"\b(" + "|".join(POSTGRES_FUNCTIONS) + r")\s*\(", re.IGNORECASE)
_DROP = re.compile(r"^\s*DROP TABLE\s+\"?(\w+)\"?", re.IGNORECASE)
# Alembic's batch mode rebuilds a table through a temporary copy of this name.
_TEMP_COPY = "_alembic_tmp_"


def _cascade_referrers(conn: Connection, table: str) -> list[str]:
    """Return the tables whose foreign keys to `table` delete their rows with it (ON DELETE CASCADE)."""
    names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars().all()
    referrers = []
    for name in names:
        # PRAGMA takes no bound parameters; the name comes from sqlite_master, quoted as an identifier.
        keys = conn.exec_driver_sql('PRAGMA foreign_key_list("' + name.replace('"', '""') + '")').all()
        if any(key[2] == table and str(key[6]).upper() == "CASCADE" for key in keys):
            referrers.append(name)
    return referrers


def _statement_hazards(revision: str, conn: Connection, statements: list[str]) -> list[Hazard]:
    found = []
    for sql in statements:
        call = _FUNCTION.search(sql)
        if call:
            found.append(make_hazard(revision, "sqlite-function", "execute", None, None,
                                     f"calls {call.group(1)}(), which SQLite does not have: fails on every SQLite "
                                     "tenant once it runs", sql))
    rebuilt = [m.group(1) for sql in statements if (m := _DROP.match(sql))
               and any(_TEMP_COPY + m.group(1) in other for other in statements)]
    for table in dict.fromkeys(rebuilt):
        referrers = _cascade_referrers(conn, table)
        if referrers:
            found.append(make_hazard(revision, "rebuild-cascade", "batch_alter_table", table, None,
                                     f"rebuilds {table} (copy, DROP, rename), which {', '.join(referrers)} "
                                     "reference(s) with ON DELETE CASCADE: their rows survive only while foreign "
                                     "keys are off during the migration (as the portal runs it)", ""))
    return found


def sqlite_hazards(scripts: ScriptDirectory, revisions: set[str], to_rev: str | None) -> list[Hazard]:
    """Run the chain up to `to_rev` on a scratch SQLite database; return the SQLite hazards of `revisions`."""
    engine = create_engine("sqlite://")
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: statements.append(sql))
    hazards: list[Hazard] = []
    try:
        with engine.connect() as conn:
            for script in chain_until(scripts, to_rev):
                statements.clear()
                try:
                    with conn.begin():
                        driver.run_steps(conn, [driver.revision_step(scripts, script)],
                                         {"render_as_batch": True, "transactional_ddl": True})
                except Exception as e:  # what SQLite refuses, it refuses for every SQLite tenant
                    if script.revision in revisions:
                        reason = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]
                        hazards.append(make_hazard(script.revision, "sqlite-fails", "execute", None, None,
                                                   f"fails on SQLite ({reason}): every SQLite tenant would stay "
                                                   "behind; use batch_alter_table and SQLite-compatible SQL", ""))
                    break  # later revisions build on this one
                if script.revision in revisions:
                    with conn.begin():  # its catalog reads end with it: the next revision begins afresh
                        hazards += _statement_hazards(script.revision, conn, list(statements))
    finally:
        engine.dispose()
    return hazards
