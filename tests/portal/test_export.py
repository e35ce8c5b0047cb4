"""CSV exports: no cell, split on any separator a spreadsheet might use, starts a formula."""

import csv
import io

import pytest

from portal.admin.base import neutralise_cell
from tests.console_support import Console

HOSTILE = ["x;=2+3;@SUM(1+1)", "a,+1", "ok|-2+3", "tab\t=1", "line\n@A1", " =1", '"x";"=1"', "=1", "\t=1"]
FORMULA = ("=", "+", "-", "@")


def _cells(text: str) -> list[str]:
    """Every cell a spreadsheet could make of `text`, whichever separator it uses."""
    cells = []
    for delimiter in (",", ";", "\t", "|"):
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            cells += [cell.strip().strip('"').strip() for cell in row]
    return cells


@pytest.mark.parametrize("value", HOSTILE)
def test_neutralised_cell_never_starts_a_formula_after_any_separator(value: str) -> None:
    safe = neutralise_cell(value)
    for line in safe.splitlines():
        assert not any(cell.startswith(FORMULA) for cell in _cells(line)), (value, safe)


def test_plain_text_is_kept(console: Console) -> None:
    for value in ("Anvil", "Rocket Skates (ACM-2)", "a-b c", "x@y.example", 12, None):
        assert neutralise_cell(value) == value


def test_exported_product_names_are_neutralised(console: Console, root) -> None:
    for i, name in enumerate(HOSTILE):
        console.add_product(console.a, name, f"HOST-{i}")
    exported = root.get(f"/t/{console.a}/admin/product/export/csv/").get_data(as_text=True)
    for row in csv.reader(io.StringIO(exported)):
        for cell in row:
            for line in cell.splitlines():
                assert not any(part.startswith(FORMULA) for part in _cells(line)), cell
