"""Temporary revision chains for tests: a copy of migrations/ plus extra revisions, never the real chain."""

import shutil
import textwrap
from pathlib import Path

from tenants.core.settings import PROJECT_ROOT

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
{downgrade}
'''


def copy_chain(tmp_path: Path, name: str = "migrations") -> Path:
    """Copy the real migrations/ folder (env.py, template, revisions) to tmp_path/name."""
    target = tmp_path / name
    shutil.copytree(PROJECT_ROOT / "migrations", target, ignore=shutil.ignore_patterns("__pycache__", "control"))
    return target


def add_revision(chain: Path, rev: str, down: str, body: str, extra: str = "", doc: str = "fixture",
                 downgrade: str = "") -> Path:
    """Write one revision file whose upgrade() runs `body` and downgrade() `downgrade` (dedented Python)."""
    code = textwrap.indent(textwrap.dedent(body).strip() or "pass", "    ")
    back = textwrap.indent(textwrap.dedent(downgrade).strip() or "pass", "    ")
    path = chain / "versions" / f"{rev}_fixture.py"
    path.write_text(REVISION.format(doc=doc, rev=rev, down=down, extra=textwrap.dedent(extra), body=code,
                                    downgrade=back))
    return path


def chain_with(tmp_path: Path, revisions: dict[str, tuple[str, str]]) -> Path:
    """Copy the real chain and add revisions {rev_id: (down_revision, upgrade body)}."""
    chain = copy_chain(tmp_path)
    for rev, (down, body) in revisions.items():
        add_revision(chain, rev, down, body)
    return chain
