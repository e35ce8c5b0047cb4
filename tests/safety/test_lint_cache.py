"""Lint verdicts remembered per chain: reused only for the same question about the same chain and lint."""

import json
from pathlib import Path

from alembic.script import ScriptDirectory

from tenants.safety.gate import plan_gate
from tenants.safety.lint.cache import cached_hazards, question_key
from tenants.safety.lint.hazards import Hazard
from tests.chains import add_revision, chain_with

PLAIN_INDEX = "op.create_index('ix_products_name', 'products', ['name'])"
DROP_NAME = "with op.batch_alter_table('products') as batch:\n    batch.drop_column('name')"


def never() -> list[Hazard]:
    raise AssertionError("linted again, though the verdict is remembered")


def kinds(hazards: list[Hazard]) -> list[str]:
    return sorted(h.key for h in hazards)


def test_the_remembered_verdict_is_the_linted_one(tmp_path: Path) -> None:
    scripts = ScriptDirectory(str(chain_with(tmp_path, {"0004": ("0003", PLAIN_INDEX)})))
    folder = tmp_path / "lint"
    first = plan_gate(scripts, {"0003"}, "head", cache=folder)
    assert kinds(first.hazards) == ["index-lock:products.name"] and not first.blocking
    remembered = cached_hazards(folder, scripts, question_key({"0003"}, "head", ("postgresql",), False), never)
    assert remembered == first.hazards
    assert plan_gate(scripts, {"0003"}, "head", cache=folder).hazards == first.hazards
    # Another question about the same chain is linted, not answered with this one's verdict.
    assert plan_gate(scripts, {"0004"}, "head", cache=folder).hazards == []


def test_a_changed_revision_is_linted_again_and_blocks(tmp_path: Path) -> None:
    chain = chain_with(tmp_path, {"0004": ("0003", PLAIN_INDEX)})
    folder = tmp_path / "lint"
    assert not plan_gate(ScriptDirectory(str(chain)), {"0003"}, "head", cache=folder).blocking
    add_revision(chain, "0004", "0003", DROP_NAME)  # the same revision id, now dropping a column
    report = plan_gate(ScriptDirectory(str(chain)), {"0003"}, "head", cache=folder)
    assert kinds(report.blocking) == ["drop-column:products.name"]
    assert len(list(folder.glob("*.json"))) == 1, "the old chain's verdict is deleted"


def test_an_unreadable_verdict_is_linted_again(tmp_path: Path) -> None:
    scripts = ScriptDirectory(str(chain_with(tmp_path, {"0004": ("0003", DROP_NAME)})))
    folder = tmp_path / "lint"
    plan_gate(scripts, {"0003"}, "head", cache=folder)
    for garbage in ("{not json", json.dumps([{"revision": "0004"}]), json.dumps({"a": 1}), ""):
        for path in folder.glob("*.json"):
            path.write_text(garbage)
        assert kinds(plan_gate(scripts, {"0003"}, "head", cache=folder).blocking) == ["drop-column:products.name"]


def test_a_folder_that_cannot_be_written_only_means_linting_again(tmp_path: Path) -> None:
    scripts = ScriptDirectory(str(chain_with(tmp_path, {"0004": ("0003", DROP_NAME)})))
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    for _ in range(2):
        assert kinds(plan_gate(scripts, {"0003"}, "head", cache=blocked).blocking) == ["drop-column:products.name"]
    assert blocked.read_text() == "not a folder"
