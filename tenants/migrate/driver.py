"""The one adapter over Alembic: every walk along a revision chain, online or offline, goes through here.

Alembic's commands (`alembic.command.upgrade` ...) re-read env.py and every revision file on each
call and own their connection's transaction. The portal runs many tenants on connections it has
already bound to a tenant, locked and put in a transaction, so it drives a `MigrationContext`
itself. That needs the list of steps between two revisions, which only ScriptDirectory's private
`_upgrade_revs` / `_downgrade_revs` compute (the very calls `alembic.command.upgrade` and
`downgrade` make). This module is the only one that touches them; checked against Alembic 1.20.1
(the pin in requirements.txt). An Alembic release that renames them breaks here, and only here.
"""

from collections.abc import Callable, Iterable

from alembic.migration import MigrationContext, MigrationStep
from alembic.operations import Operations
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.engine import Dialect

from tenants.core.names import quote_ident

Steps = list[MigrationStep]
# A tenant in a branched state (alembic_version holds several rows, e.g. after a downgrade below
# a merge) is at all of those revisions: the portal writes that state as one string, its sorted
# heads joined by this separator (the portal accepts no revision id with a comma in it: see
# tenants.migrate.migrator.resolve_target), the way `head` names several heads.
HEAD_SEPARATOR = ", "
# Alembic's on_version_apply hook: (context, step, heads, run_args) after each step.
OnApplied = Callable[..., None]

__all__ = ["HEAD_SEPARATOR", "CommandError", "OnApplied", "Steps", "ancestors", "current_revision", "joined_heads",
           "render_steps", "revision_step", "run_steps", "split_heads", "stamp", "step_revision",
           "steps_between"]


def joined_heads(heads: Iterable[str]) -> str | None:
    """Return the revision string of a tenant at `heads` (None: base; several: a branched state)."""
    found = sorted(heads)
    return HEAD_SEPARATOR.join(found) if found else None


def split_heads(revision: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """Return the heads a revision string names: () for base, one for a plain revision, several when branched."""
    if revision is None:
        return ()
    if isinstance(revision, tuple):
        return revision
    return tuple(part.strip() for part in revision.split(HEAD_SEPARATOR.strip()) if part.strip())


def _alembic_revision(revision: str | None) -> str | tuple[str, ...] | None:
    """What Alembic's walks take: a plain id, or a tuple of heads for a branched state."""
    heads = split_heads(revision)
    return None if not heads else heads[0] if len(heads) == 1 else heads


def steps_between(scripts: ScriptDirectory, from_rev: str | None, to_rev: str | None, *,
                  downgrade: bool = False) -> Steps:
    """Return the steps that take a database at `from_rev` to `to_rev` (None = base), in running order.

    Either may be a branched state (several heads). Raises alembic's CommandError when no such
    path exists (e.g. an upgrade to an older revision).
    """
    destination = _alembic_revision(to_rev) or "base"
    if downgrade:
        return scripts._downgrade_revs(destination, _alembic_revision(from_rev))
    return scripts._upgrade_revs(destination, _alembic_revision(from_rev))


def revision_step(scripts: ScriptDirectory, script: Script, *, downgrade: bool = False) -> MigrationStep:
    """Return the upgrade (or downgrade) step of one revision on its own (for rendering it alone)."""
    if downgrade:
        return MigrationStep.downgrade_from_script(scripts.revision_map, script)
    return MigrationStep.upgrade_from_script(scripts.revision_map, script)


def step_revision(step: MigrationStep) -> str:
    """Return the revision a step applies or takes back."""
    return step.up_revision_id or (step.up_revision_ids[0] if step.up_revision_ids else "base")


def ancestors(scripts: ScriptDirectory, revision: str | None) -> set[str]:
    """Return `revision` (every head of a branched state) and every revision below it (empty for base)."""
    heads = _alembic_revision(revision)
    if heads is None:
        return set()
    return {script.revision for script in scripts.iterate_revisions(heads, "base")}


def current_revision(conn: Connection, opts: dict) -> str | None:
    """Read the revision recorded in the alembic_version table that `opts` points at (several: branched)."""
    if conn.dialect.name == "postgresql":
        # Alembic asks the inspector whether the table exists, a query that visits every table
        # named alembic_version in the catalogue (one per tenant schema): it grew with the fleet.
        # to_regclass resolves the one name through the catalogue's index.
        schema = opts.get("version_table_schema")
        table = (quote_ident(schema) + "." if schema else "") + "alembic_version"
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is None:
            return None
        return joined_heads(conn.exec_driver_sql("SELECT version_num FROM " + table).scalars())
    return joined_heads(MigrationContext.configure(conn, opts=opts).get_current_heads())


def stamp(conn: Connection, scripts: ScriptDirectory, revision: str, opts: dict) -> None:
    """Write `revision` (or a branched state's heads) into the alembic_version table `opts` points at; run nothing."""
    MigrationContext.configure(conn, opts=opts).stamp(scripts, _alembic_revision(revision))  # type: ignore[arg-type]


def _context(opts: dict, steps: Steps, on_applied: OnApplied | None, **where: object) -> MigrationContext:
    hooks = {"on_version_apply": [on_applied]} if on_applied else {}
    return MigrationContext.configure(**where, opts={**opts, **hooks, "fn": lambda rev, context: steps})


def run_steps(conn: Connection, steps: Steps, opts: dict, *, on_applied: OnApplied | None = None) -> str | None:
    """Run `steps` on `conn`, inside whatever transaction the caller holds; return the revision reached."""
    ctx = _context(opts, steps, on_applied, connection=conn)
    with Operations.context(ctx):
        ctx.run_migrations()
    return joined_heads(ctx.get_current_heads())


def render_steps(steps: Steps, opts: dict, dialect: Dialect | str, *, on_applied: OnApplied | None = None) -> None:
    """Render `steps` as SQL in Alembic's offline mode, into `opts['output_buffer']`; nothing is executed."""
    where = {"dialect_name": dialect} if isinstance(dialect, str) else {"dialect": dialect}
    ctx = _context({**opts, "as_sql": True}, steps, on_applied, **where)
    with Operations.context(ctx):
        ctx.run_migrations()
