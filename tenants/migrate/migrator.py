"""Move one tenant along the revision chain, all revisions in one transaction.

Alembic runs in-process on a connection the storage backend has bound to the tenant; the
script directory is loaded once by the caller and reused for every tenant.
"""

import re
import time
from dataclasses import dataclass, field

from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from tenants.core.errors import ForeignKeyViolation, MultipleHeads
from tenants.core.storage import TenantStorage
from tenants.migrate import driver
from tenants.migrate.driver import CommandError
from tenants.migrate.errors import InvalidRevision, MigrationFailed, MigrationTimeout

# PostgreSQL SQLSTATEs for lock_timeout and statement_timeout.
TIMEOUT_SQLSTATES = {"55P03", "57014"}


@dataclass
class MigrationOutcome:
    """What a migration did to one tenant."""

    slug: str
    from_revision: str | None
    to_revision: str | None
    applied: list[str] = field(default_factory=list)
    duration_ms: float = 0.0


def alembic_options(storage: TenantStorage) -> dict:
    """Return the MigrationContext options every tenant run uses (also by migrations/env.py)."""
    return {
        "version_table_schema": storage.version_table_schema,
        "render_as_batch": storage.dialect == "sqlite",
        # SQLite DDL is transactional here (see tenants.core.engines), so Alembic may say so.
        "transactional_ddl": True,
    }


def resolve_target(scripts: ScriptDirectory, target: str | None) -> str | None:
    """Return the full revision id for `target` ('head', 'base', a prefix); raise InvalidRevision."""
    if target in (None, "base"):
        return None
    if not isinstance(target, str) or not target.strip() or not target.replace("_", "").isalnum():
        raise InvalidRevision(f"invalid revision {target!r}: give a revision id, 'head' or 'base'")
    if target in ("head", "heads"):
        heads = tuple(sorted(scripts.get_heads()))
        if len(heads) > 1:
            raise MultipleHeads(heads)
        return heads[0] if heads else None
    try:
        revision = scripts.get_revision(target)
    except CommandError as e:
        raise InvalidRevision(f"unknown revision {target!r}: see 'manage.py db history'") from e
    if revision is None:
        raise InvalidRevision(f"unknown revision {target!r}: see 'manage.py db history'")
    return revision.revision


RELATIVE = re.compile(r"-([1-9][0-9]{0,3})")


def relative_target(scripts: ScriptDirectory, current: str | None, target: str) -> str | None:
    """Return the revision `-N` steps below `current` ('-1': its parent; None: base); raise InvalidRevision."""
    match = RELATIVE.fullmatch(target)
    if match is None:
        raise InvalidRevision(f"invalid relative revision {target!r}: use -1, -2, ...")
    if len(driver.split_heads(current)) > 1:
        raise InvalidRevision(f"{target} from {current}: the tenant is at several heads (a branched state); "
                              "name the revision to go back to")
    revision = current
    for _ in range(int(match.group(1))):
        if revision is None:
            raise InvalidRevision(f"{target} goes below base from {current or 'base'}")
        down = scripts.get_revision(revision).down_revision
        if isinstance(down, tuple | list):
            raise InvalidRevision(f"{target} from {current}: revision {revision} merges {', '.join(down)}; "
                                  "name the revision to go back to")
        revision = down
    return revision


def current_revision(storage: TenantStorage) -> str | None:
    """Read the tenant's own alembic_version."""
    with storage.begin() as conn:
        return driver.current_revision(conn, alembic_options(storage))


def _one_line(error: BaseException) -> str:
    message = str(getattr(error, "orig", None) or error).strip()
    return message.splitlines()[0] if message else type(error).__name__


def migrate_tenant(
    storage: TenantStorage,
    scripts: ScriptDirectory,
    target: str | None,
    *,
    downgrade: bool = False,
    lock_timeout: float = 5.0,
    statement_timeout: float = 300.0,
    rehearse: bool = False,
) -> MigrationOutcome:
    """Move the tenant to `target` (None = base) in one transaction, under the tenant's lock.

    On any failure the transaction rolls back, the tenant stays at its previous revision
    and MigrationFailed (or MigrationTimeout) names the revision that failed. With `rehearse`
    every step runs and the transaction is rolled back anyway: the outcome says what would happen.
    """
    target_rev = resolve_target(scripts, target)
    destination = target_rev or "base"
    started = time.perf_counter()
    applied: list[str] = []
    failing: str | None = None
    try:
        with storage.begin(exclusive=True, revisions=True, rehearse=rehearse, lock_timeout=lock_timeout,
                           timeouts=(lock_timeout, statement_timeout)) as conn:
            opts = alembic_options(storage)
            from_rev = driver.current_revision(conn, opts)
            if not downgrade and target_rev and from_rev and target_rev != from_rev and \
                    target_rev in driver.ancestors(scripts, from_rev):
                raise InvalidRevision(f"tenant {storage.slug!r} is at {from_rev}, newer than {target_rev}: "
                                      "use downgrade-tenant to go back")
            try:
                steps = driver.steps_between(scripts, from_rev, target_rev, downgrade=downgrade)
            except CommandError as e:
                way = "downgrade" if downgrade else "upgrade"
                message = f"cannot {way} tenant {storage.slug!r} from {from_rev} to {destination}: {e}"
                raise InvalidRevision(message) from e
            pending = [step.revision.revision for step in steps]
            failing = pending[0] if pending else None

            def on_applied(ctx, step, heads, run_args) -> None:  # type: ignore[no-untyped-def]
                nonlocal failing
                applied.append(step.up_revision_id)
                failing = pending[len(applied)] if len(applied) < len(pending) else None

            to_rev = driver.run_steps(conn, steps, opts, on_applied=on_applied)
    except DBAPIError as e:
        code = getattr(e.orig, "pgcode", None)
        error_class = MigrationTimeout if code in TIMEOUT_SQLSTATES else MigrationFailed
        raise error_class(storage.slug, failing, _one_line(e)) from e
    except (InvalidRevision, MigrationFailed):
        raise
    except ForeignKeyViolation as e:  # found before commit: name the last revision of the range
        raise MigrationFailed(storage.slug, applied[-1] if applied else None, str(e)) from e
    except Exception as e:
        if type(e).__module__.startswith("tenants."):
            raise
        raise MigrationFailed(storage.slug, failing, _one_line(e)) from e
    return MigrationOutcome(storage.slug, from_rev, to_rev, applied, (time.perf_counter() - started) * 1000)
