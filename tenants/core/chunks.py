"""Long IN lists, split so each statement stays within the bound parameters a database takes."""

from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

# SQLite before 3.32 takes at most 999 parameters a statement; a fleet page or a bulk file may name more.
MAX_PARAMS = 900


def chunks(values: list[T], size: int = MAX_PARAMS) -> Iterator[list[T]]:
    """Yield `values` in lists of at most `size`."""
    for start in range(0, len(values), size):
        yield values[start:start + size]
