"""The one engine factory's PostgreSQL connection policy, on the real server."""

import threading

import pytest
from sqlalchemy import text

from tenants.core.engines import engine_options, make_engine
from tests.conftest import PG_ADMIN_URL, require_postgres


def test_gss_probe_is_off_unless_the_url_asks_for_it():
    assert engine_options(PG_ADMIN_URL)["connect_args"]["gssencmode"] == "disable"
    assert "gssencmode" not in engine_options(PG_ADMIN_URL + "?gssencmode=prefer")["connect_args"]
    assert "connect_args" not in engine_options("sqlite:///x.db")


@pytest.mark.postgres
def test_threads_connecting_at_once_get_working_connections():
    require_postgres()
    engine = make_engine(PG_ADMIN_URL)
    errors: list[Exception] = []

    def connect() -> None:
        try:
            for _ in range(5):
                with engine.connect() as conn:
                    assert conn.execute(text("SELECT 1")).scalar() == 1
        except Exception as e:  # collected: a failure on a thread must fail the test
            errors.append(e)

    try:
        threads = [threading.Thread(target=connect) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        engine.dispose()
    assert errors == []


@pytest.mark.postgres
def test_the_url_can_still_choose_gss():
    require_postgres()
    engine = make_engine(PG_ADMIN_URL + "?gssencmode=prefer")
    try:
        with engine.connect() as conn:  # the server has no GSS: prefer falls back to a plain connection
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
