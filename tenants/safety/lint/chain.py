"""Lint tenant revisions for data loss, broken rows, long locks and work outside a transaction.

Each revision is rendered to PostgreSQL SQL offline (tenants.safety.lint.render) and analysed
statement by statement (tenants.safety.lint.analyzer), replaying the chain from base; a fleet
with SQLite tenants also runs the chain on SQLite (tenants.safety.lint.sqlite).
"""

from collections.abc import Collection
from dataclasses import replace
from fnmatch import fnmatchcase

from alembic.script import ScriptDirectory

from tenants.safety.lint.analyzer import Analyzer
from tenants.safety.lint.hazards import POSTGRES_ONLY, Hazard
from tenants.safety.lint.render import acknowledgements, chain_until, render_revision, revisions_between
from tenants.safety.lint.sqlite import sqlite_hazards


def _acknowledge(hazards: list[Hazard], marks: dict[str, str]) -> list[Hazard]:
    out = []
    for hazard in hazards:
        reason = next((r for p, r in marks.items() if fnmatchcase(hazard.key, p)), None)
        out.append(replace(hazard, acknowledged=True, acknowledgement=reason) if reason else hazard)
    return out


def lint_chain(scripts: ScriptDirectory, revisions: set[str], to_rev: str | None,
               dialects: Collection[str] = ("postgresql",)) -> list[Hazard]:
    """Return the hazards of the given revisions on each of `dialects`, replaying the chain from base to `to_rev`.

    PostgreSQL SQL is parsed for every fleet (its hazards are mostly common to both dialects);
    a SQLite-only fleet drops the ones SQLite does not have; a fleet with SQLite tenants also
    gets the hazards found by running the chain on SQLite.
    """
    if not revisions:
        return []
    analyzer, found = Analyzer(), []
    scripts_by_revision = {}
    for script in chain_until(scripts, to_rev):
        rendered = render_revision(scripts, script)
        hazards = analyzer.revision(script.revision, rendered.statements, rendered.error)
        if script.revision in revisions:
            scripts_by_revision[script.revision] = script
            found += [h for h in hazards if "postgresql" in dialects or h.kind not in POSTGRES_ONLY]
    if "sqlite" in dialects:
        found += sqlite_hazards(scripts, revisions, to_rev)
    return [h for revision, script in scripts_by_revision.items()
            for h in _acknowledge([h for h in found if h.revision == revision], acknowledgements(script))]


def lint_revisions(scripts: ScriptDirectory, from_rev: str | None, to_rev: str | None = "head",
                   dialects: Collection[str] = ("postgresql",)) -> list[Hazard]:
    """Return the hazards of the revisions a tenant at `from_rev` would run to reach `to_rev`."""
    return lint_chain(scripts, set(revisions_between(scripts, from_rev, to_rev)), to_rev, dialects)


def lint_pending(scripts: ScriptDirectory, from_revisions: set[str | None], to_rev: str | None = "head",
                 dialects: Collection[str] = ("postgresql",)) -> list[Hazard]:
    """Return the hazards of every revision pending for any of the given starting revisions."""
    pending: set[str] = set()
    for start in from_revisions:
        pending.update(revisions_between(scripts, start, to_rev))
    return lint_chain(scripts, pending, to_rev, dialects)


def lint_downgrade(scripts: ScriptDirectory, from_revisions: set[str | None], target: str | None,
                   dialects: Collection[str] = ("postgresql",)) -> list[Hazard]:
    """Return the hazards of the downgrade bodies a tenant at any of `from_revisions` runs to reach `target`.

    For each starting revision the catalog is replayed from base up to it, then each downgrade
    body is analysed in the order it runs, so a dropped column or table is known with its type.
    """
    found: dict[tuple[str, str, str], Hazard] = {}
    for start in sorted(s for s in from_revisions if s is not None):
        taken_back = set(revisions_between(scripts, target, start))
        if not taken_back:
            continue
        analyzer = Analyzer()
        chain = chain_until(scripts, start)
        for script in chain:
            rendered = render_revision(scripts, script)
            analyzer.revision(script.revision, rendered.statements, rendered.error)
        for script in reversed(chain):
            if script.revision not in taken_back:
                break
            rendered = render_revision(scripts, script, downgrade=True)
            hazards = [replace(h, message="downgrade: " + h.message)
                       for h in analyzer.revision(script.revision, rendered.statements, rendered.error)
                       if "postgresql" in dialects or h.kind not in POSTGRES_ONLY]
            for hazard in _acknowledge(hazards, acknowledgements(script)):
                found.setdefault((hazard.revision, hazard.key, hazard.message), hazard)
    return list(found.values())
