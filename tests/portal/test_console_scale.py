"""The console's pages cost the same number of statements at 2 tenants as at 62, and touch no tenant but the URL's."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, event

from tests.console_support import Console, record_versions, register_tenants


@contextmanager
def statements() -> Iterator[list[tuple[str, str]]]:
    """Record (database URL, SQL) of every statement any engine of this process runs meanwhile."""
    seen: list[tuple[str, str]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.append((str(conn.engine.url), statement))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def pages(console: Console) -> list[str]:
    return ["/admin/tenants/?page_size=100", "/admin/", "/admin/switch/search/?query=a",
            "/admin/switch/search/?query=", f"/t/{console.a}/admin/product/", "/admin/tenants/?search=e"]


@pytest.mark.parametrize("page", range(6))
def test_statements_do_not_grow_with_the_number_of_tenants(console: Console, root, page: int) -> None:
    url = pages(console)[page]
    console.refresh_stats()
    assert root.get(url).status_code == 200  # warm: caches, the head revision, the session's grants
    with statements() as few:
        assert root.get(url).status_code == 200
    bulk = [f"bulk_{i:03d}" for i in range(60)]
    register_tenants(console.tenancy.control_engine, bulk)
    record_versions(console.tenancy.control_engine, bulk, console.tenancy.head())  # created tenants are at head
    with statements() as many:
        response = root.get(url)
    assert response.status_code == 200
    assert len(many) == len(few), "\n".join(sql for _, sql in many)
    if "/t/" not in url:  # a control page reads the control plane only, never a tenant's storage
        assert not [db for db, _ in many if "/tenants/" in db]  # no SQLite tenant file
        assert not [sql for _, sql in many if f"tenant_{console.a}" in sql or f"tenant_{console.b}" in sql]
    if url.startswith("/admin/tenants/?page"):
        assert response.get_data(as_text=True).count('name="rowid"') == 62  # every row was listed
