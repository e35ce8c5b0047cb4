"""Render tenant revisions to the SQL they really run, and read their acknowledgement markers.

Each revision is rendered on its own in Alembic's offline mode (as `upgrade --sql` does), so
the lint sees the statements Alembic emits, not the Python that asks for them.
"""

import re
from dataclasses import dataclass, field

from alembic.script import Script, ScriptDirectory

from tenants.migrate import driver
from tenants.migrate.errors import InvalidRevision
from tenants.migrate.migrator import resolve_target

#: Module-level marker in a revision file: {"<kind>:<table>.<column>": "why this is fine"}.
ACK_ATTRIBUTE = "tenant_portal_acknowledge"
#: Comment form of the marker: `# tenant-portal: acknowledge <kind>:<table>.<column> -- why`.
ACK_COMMENT = re.compile(r"^\s*#\s*tenant-portal:\s*acknowledge\s+(\S+)\s+--\s*(\S.*?)\s*$", re.MULTILINE)


class _StatementBuffer:
    """An output buffer for offline mode that keeps each emitted statement apart."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def write(self, text: str) -> None:
        self.items.append(text.strip())

    def flush(self) -> None:
        pass


@dataclass
class RenderedRevision:
    """One revision's offline SQL (without Alembic's own BEGIN/COMMIT and comments)."""

    revision: str
    script: Script
    statements: list[str] = field(default_factory=list)
    error: str | None = None


def render_revision(scripts: ScriptDirectory, script: Script, dialect: str = "postgresql", *,
                    downgrade: bool = False) -> RenderedRevision:
    """Render one revision's upgrade (or downgrade) to SQL statements in `dialect`; keep the error if it cannot be."""
    out = _StatementBuffer()
    down = script.down_revision
    start = script.revision if downgrade else (down if isinstance(down, str) else None)
    opts = {"output_buffer": out, "literal_binds": True, "transactional_ddl": True, "starting_rev": start}
    rendered = RenderedRevision(script.revision, script)
    try:
        driver.render_steps([driver.revision_step(scripts, script, downgrade=downgrade)], opts, dialect)
    except Exception as e:  # a revision that needs a live database (e.g. reads rows) cannot be rendered
        rendered.error = f"{type(e).__name__}: {e}".strip().splitlines()[0]
    statements = [s for s in out.items if s and not s.startswith("--")]
    # Alembic wraps the run in one BEGIN ... COMMIT; anything else transactional is the revision's own.
    if statements and statements[0].upper() == "BEGIN;":
        statements = statements[1:]
    if statements and statements[-1].upper() == "COMMIT;":
        statements = statements[:-1]
    rendered.statements = statements
    return rendered


def _heads(scripts: ScriptDirectory, revision: str | None) -> tuple[str, ...]:
    """Resolve a revision (or each head of a branched state) to full ids; () for base."""
    if revision in (None, "base"):
        return ()
    return tuple(sorted(filter(None, (resolve_target(scripts, head) for head in driver.split_heads(revision)))))


def chain_until(scripts: ScriptDirectory, to_rev: str | None) -> list[Script]:
    """Return the revisions from base up to `to_rev` (every head of a branched state), in upgrade order."""
    target = _heads(scripts, to_rev)
    if not target:
        return []
    return list(reversed(list(scripts.iterate_revisions(target if len(target) > 1 else target[0], "base"))))


def revisions_between(scripts: ScriptDirectory, from_rev: str | None, to_rev: str | None) -> list[str]:
    """Return the ids a tenant at `from_rev` (branched or not) runs to reach `to_rev`, in upgrade order."""
    start, target = _heads(scripts, from_rev), _heads(scripts, to_rev)
    if not target or start == target:
        return []
    done = driver.ancestors(scripts, driver.joined_heads(start))
    if set(target) <= done:
        raise InvalidRevision(f"revision {from_rev!r} is not below {to_rev!r}: nothing to upgrade")
    # A target on another branch (0004a -> 0004b) runs that branch only, as Alembic does.
    return [s.revision for s in chain_until(scripts, to_rev) if s.revision not in done]


def acknowledgements(script: Script) -> dict[str, str]:
    """Return the revision's acknowledged hazards (pattern -> reason) from both marker forms."""
    found: dict[str, str] = {}
    marker = getattr(script.module, ACK_ATTRIBUTE, None)
    if isinstance(marker, dict):
        found.update({str(k): str(v) for k, v in marker.items() if str(v).strip()})
    try:
        with open(script.path, encoding="utf-8") as f:
            source = f.read()
    except OSError:
        source = ""
    for pattern, reason in ACK_COMMENT.findall(source):
        found.setdefault(pattern, reason)
    return found
