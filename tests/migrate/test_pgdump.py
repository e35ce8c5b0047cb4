"""pg_dump is given the tenant URL's libpq options, and never its password on the command line."""

import pytest
from sqlalchemy.engine import make_url

from tenants.migrate.pgdump import libpq_target, run_pg_dump

pytestmark = pytest.mark.postgres


def test_the_urls_query_options_reach_pg_dump(pg_url: str) -> None:
    run_pg_dump(pg_url, ["--schema-only"], timeout=60)  # the URL as it is: works
    # The test server has SSL off: a URL that requires SSL must make pg_dump fail, not be ignored.
    with pytest.raises(RuntimeError, match="pg_dump failed: .*SSL"):
        run_pg_dump(pg_url + "?sslmode=require", ["--schema-only"], timeout=60)


def test_the_password_goes_in_the_environment_not_the_command_line() -> None:
    uri, env = libpq_target("postgresql+psycopg2://portal:s3cret@db.internal:6543/tenants?sslmode=verify-full")
    assert "s3cret" not in uri and env["PGPASSWORD"] == "s3cret"
    parsed = make_url(uri)
    assert (parsed.drivername, parsed.host, parsed.port, parsed.database, parsed.query) == (
        "postgresql", "db.internal", 6543, "tenants", {"sslmode": "verify-full"})
