"""Temporary revision chains for fault tests: the real chain plus extra revisions."""

import shutil
import textwrap
from pathlib import Path

from tenants.settings import PROJECT_ROOT


def chain_with(tmp_path: Path, revisions: dict[str, tuple[str, str]]) -> Path:
    """Copy migrations/ to tmp_path and add revisions {rev_id: (down_revision, upgrade_body)}."""
    target = tmp_path / "chain"
    shutil.copytree(PROJECT_ROOT / "migrations", target, ignore=shutil.ignore_patterns("control", "__pycache__"))
    for rev, (down, body) in revisions.items():
        source = f'''"""test revision {rev}"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{textwrap.indent(textwrap.dedent(body).strip(), "    ")}


def downgrade():
    pass
'''
        (target / "versions" / f"{rev}_test.py").write_text(source)
    return target
