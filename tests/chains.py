"""Temporary revision chains for tests: a copy of migrations/ plus extra revisions, never the real chain."""

import shutil
import textwrap
from pathlib import Path

from tenants.settings import PROJECT_ROOT

REVISION = '''"""{doc}

Revision ID: {rev}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None
{extra}

def upgrade():
{body}


def downgrade():
    pass
'''


def copy_chain(tmp_path: Path) -> Path:
    """Copy the real migrations/ folder (env.py, template, revisions) under tmp_path."""
    target = tmp_path / "migrations"
    shutil.copytree(PROJECT_ROOT / "migrations", target, ignore=shutil.ignore_patterns("__pycache__", "control"))
    return target


def add_revision(chain: Path, rev: str, down: str, body: str, extra: str = "", doc: str = "fixture") -> Path:
    """Write one revision file whose upgrade() runs `body` (dedented Python)."""
    code = textwrap.indent(textwrap.dedent(body).strip() or "pass", "    ")
    path = chain / "versions" / f"{rev}_fixture.py"
    path.write_text(REVISION.format(doc=doc, rev=rev, down=down, extra=textwrap.dedent(extra), body=code))
    return path


def chain_with(tmp_path: Path, revisions: dict[str, tuple[str, str]]) -> Path:
    """Copy the real chain and add revisions {rev_id: (down_revision, upgrade body)}."""
    chain = copy_chain(tmp_path)
    for rev, (down, body) in revisions.items():
        add_revision(chain, rev, down, body)
    return chain
