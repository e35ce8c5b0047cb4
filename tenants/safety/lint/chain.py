"""Lint tenant revisions for data loss, broken rows, long locks and work outside a transaction.

Each revision is rendered to PostgreSQL SQL offline (tenants.safety.lint.render) and analysed
statement by statement (tenants.safety.lint.analyzer), replaying the chain from base.
"""

from dataclasses import replace
from fnmatch import fnmatchcase

from alembic.script import ScriptDirectory

from tenants.safety.lint.analyzer import Analyzer
from tenants.safety.lint.hazards import POSTGRES_ONLY, Hazard
from tenants.safety.lint.render import acknowledgements, chain_until, render_revision, revisions_between


def _acknowledge(hazards: list[Hazard], marks: dict[str, str]) -> list[Hazard]:
    out = []
    for hazard in hazards:
        reason = next((r for p, r in marks.items() if fnmatchcase(hazard.key, p)), None)
        out.append(replace(hazard, acknowledged=True, acknowledgement=reason) if reason else hazard)
    return out


def lint_chain(scripts: ScriptDirectory, revisions: set[str], to_rev: str | None,
               dialect: str = "postgresql") -> list[Hazard]:
    """Return the hazards of the given revisions, replaying the chain from base up to `to_rev`."""
    if not revisions:
        return []
    analyzer, hazards = Analyzer(), []
    for script in chain_until(scripts, to_rev):
        rendered = render_revision(scripts, script)
        found = analyzer.revision(script.revision, rendered.statements, rendered.error)
        if script.revision in revisions:
            if dialect == "sqlite":
                found = [h for h in found if h.kind not in POSTGRES_ONLY]
            hazards.extend(_acknowledge(found, acknowledgements(script)))
    return hazards


def lint_revisions(scripts: ScriptDirectory, from_rev: str | None, to_rev: str | None = "head",
                   dialect: str = "postgresql") -> list[Hazard]:
    """Return the hazards of the revisions a tenant at `from_rev` would run to reach `to_rev`."""
    return lint_chain(scripts, set(revisions_between(scripts, from_rev, to_rev)), to_rev, dialect)


def lint_pending(scripts: ScriptDirectory, from_revisions: set[str | None], to_rev: str | None = "head",
                 dialect: str = "postgresql") -> list[Hazard]:
    """Return the hazards of every revision pending for any of the given starting revisions."""
    pending: set[str] = set()
    for start in from_revisions:
        pending.update(revisions_between(scripts, start, to_rev))
    return lint_chain(scripts, pending, to_rev, dialect)
