"""An append-only sequence of records a run keeps one per tenant, held off the heap past a small bound.

A fleet run's plan and report list every tenant. Kept as Python objects they made the runner's
memory grow with the fleet (about 0.7 KB a tenant); kept here they cost a bounded buffer in
memory (stdlib's SpooledTemporaryFile turns into an unlinked temporary file past IN_MEMORY bytes),
and reading them back costs one page of records at a time.
"""

import pickle
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import Generic, TypeVar

from tenants.core.errors import SpoolFailed

T = TypeVar("T")

IN_MEMORY = 256 * 1024  # bytes of pickled records held in memory before they go to a temporary file
PAGE = 256  # records pickled together: one call per page, and values they share (revisions) stored once


class Spool(Generic[T]):
    """Records in the order they were appended; iterate it any number of times."""

    def __init__(self, records: Iterable[T] = ()) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)
        weakref.finalize(self, self._file.close)  # closed with the spool: a report may outlive its run
        self._pages: list[int] = []  # where each written page ends
        self._tail: list[T] = []  # the records not written yet
        self._count = 0
        self.extend(records)

    def append(self, record: T) -> None:
        self._tail.append(record)
        self._count += 1
        if len(self._tail) >= PAGE:
            self._write()

    def extend(self, records: Iterable[T]) -> None:
        for record in records:
            self.append(record)

    def _write(self) -> None:
        try:
            self._file.seek(0, 2)
            pickle.dump(self._tail, self._file, pickle.HIGHEST_PROTOCOL)
            self._pages.append(self._file.tell())
        except OSError as e:
            with suppress(OSError):  # a part-written page must not be read as the start of the next
                self._file.truncate(self._pages[-1] if self._pages else 0)
            raise SpoolFailed(f"cannot keep a run's records in {tempfile.gettempdir()}: {e.strerror or e}; "
                              "point TMPDIR at a folder with room") from e
        self._tail = []

    def __iter__(self) -> Iterator[T]:
        start, page = 0, 0
        while page < len(self._pages):
            self._file.seek(start)
            records = pickle.load(self._file)
            start, page = self._pages[page], page + 1
            yield from records
        yield from list(self._tail)  # a copy: an append meanwhile may write the tail out and clear it

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

