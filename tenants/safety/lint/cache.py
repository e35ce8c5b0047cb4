"""Lint verdicts remembered per chain, so a run on an unchanged chain skips the lint (and pglast's import).

Linting parses every revision's SQL with pglast: importing it alone costs a run about 0.2 s
before its first tenant, and a scheduled job asks the same question of the same chain every
night. A verdict is the hazards found for one question (starting revisions, target, dialects,
direction) about one chain (every revision file's bytes: templates.chain_key) by one lint (its
own source files and the versions of pglast, Alembic and SQLAlchemy, which render the SQL it
reads). Any change of those asks anew. Verdicts live in `<tenant_dir>/.lint`, written whole
(a temporary file, then a rename); one that cannot be read is linted again, and a folder that
cannot be written only means the next run lints again.
"""

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Collection, Iterable
from importlib.metadata import version
from pathlib import Path

from alembic.script import ScriptDirectory

from tenants.migrate.templates import chain_key, remove_stale
from tenants.safety.lint.hazards import Hazard

# The lint's own modules, and the driver that renders the SQL it reads.
_LINT_SOURCES = (*sorted(Path(__file__).resolve().parent.glob("*.py")),
                 Path(__file__).resolve().parents[2] / "migrate" / "driver.py")


def lint_fingerprint() -> str:
    """Return a digest of what decides a verdict besides the chain: the lint's code and its libraries' versions."""
    digest = hashlib.sha256()
    for name in ("pglast", "alembic", "sqlalchemy"):
        digest.update(f"{name}={version(name)}\0".encode())
    for path in _LINT_SOURCES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def question_key(starts: Iterable[str | None], target: str | None, dialects: Collection[str], downgrade: bool) -> str:
    """Return a digest of one question put to the lint."""
    question = json.dumps([sorted(s or "" for s in starts), target, sorted(dialects), downgrade])
    return hashlib.sha256(question.encode()).hexdigest()[:16]


def cached_hazards(folder: Path, scripts: ScriptDirectory, question: str,
                   lint: Callable[[], list[Hazard]]) -> list[Hazard]:
    """Return the verdict on `question` about the chain of `scripts`: remembered in `folder`, else `lint()`'s."""
    heads = ",".join(sorted(scripts.get_heads())) or "base"  # a branched chain has several
    prefix = hashlib.sha256(f"{chain_key(scripts, heads)}\0{lint_fingerprint()}".encode()).hexdigest()[:16]
    path = folder / f"{prefix}-{question}.json"
    try:
        return [Hazard(**fields) for fields in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):  # none yet, or unreadable: lint again
        pass
    hazards = lint()
    _remember(folder, path, prefix, hazards)
    return hazards


def _remember(folder: Path, path: Path, prefix: str, hazards: list[Hazard]) -> None:
    fields = [{k: v for k, v in hazard.to_dict().items() if k != "key"} for hazard in hazards]
    scratch = folder / f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        scratch.write_text(json.dumps(fields))
        os.replace(scratch, path)  # readers see the whole verdict or none
        remove_stale(folder, prefix)  # the verdicts of other chains or lints are never asked for again
    except OSError:  # a folder that cannot be written: the next run lints again
        with contextlib.suppress(OSError):
            scratch.unlink(missing_ok=True)
