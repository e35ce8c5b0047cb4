"""The suite's own scaffolding: the databases tests make are made and dropped whatever a test does to PATH."""

import psycopg2
from sqlalchemy.engine import make_url

from tests.conftest import PG_ADMIN_URL, create_pg_database, drop_pg_database, require_postgres


def database_exists(name: str) -> bool:
    with psycopg2.connect(PG_ADMIN_URL) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        found = cur.fetchone() is not None
    conn.close()
    return found


def test_databases_are_made_and_dropped_while_a_test_hides_psql_from_path(tmp_path, monkeypatch):
    # The Dropper's threads drop databases while other tests run; one that points PATH at an
    # empty folder (the pg_dump tests do) must not make those drops fail.
    require_postgres()
    monkeypatch.setenv("PATH", str(tmp_path))
    url = create_pg_database()
    name = make_url(url).database
    try:
        assert database_exists(name)
    finally:
        drop_pg_database(url)
    assert not database_exists(name)
