"""Shared fixtures: real PostgreSQL databases and SQLite folders, made per test and removed after.

PostgreSQL is the machine's server (PORTAL_TEST_PG_URL, default the local trust login). When it
cannot be reached the PostgreSQL half of the suite is skipped, except under CI=true, where
that is a failure.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from portal import create_app
from portal.config import TestConfig
from tenants.core.settings import PROJECT_ROOT, TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control

pytest_plugins = ["tests.console_support"]

PG_ADMIN_URL = os.environ.get("PORTAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def _pg_reachable() -> str | None:
    try:
        psycopg2.connect(make_url(PG_ADMIN_URL).render_as_string(hide_password=False).replace(
            "postgresql://", "postgresql://", 1), connect_timeout=3).close()
        return None
    except psycopg2.OperationalError as e:
        return str(e).strip().splitlines()[0]


PG_DOWN = _pg_reachable()


def require_postgres() -> None:
    """Skip (or, under CI, fail) a test that needs PostgreSQL when it is down."""
    if PG_DOWN is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL unreachable under CI: {PG_DOWN}", pytrace=False)
    pytest.skip(f"PostgreSQL unreachable: {PG_DOWN}")


def _admin_execute(sql: str, admin_url: str = PG_ADMIN_URL) -> None:
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def create_pg_database(prefix: str = "tp_test", admin_url: str = PG_ADMIN_URL) -> str:
    """Create a uniquely named database on the server of `admin_url` and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"', admin_url)  # test scaffolding: name made here, not user input
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    """Drop a database made by create_pg_database, ending its sessions."""
    parsed = make_url(url)
    admin_url = parsed.set(database="postgres").render_as_string(hide_password=False)
    _admin_execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)', admin_url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database of this test's own."""
    require_postgres()
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite files and once on PostgreSQL schemas."""
    return request.param


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> TenantSettings:
    """Tenancy settings for this test: a control database and tenant storage of its own."""
    if backend == "postgresql":
        control_url = request.getfixturevalue("pg_url")
    else:
        control_url = f"sqlite:///{tmp_path / 'portal.sqlite3'}"
    return TenantSettings(control_url=control_url, tenant_dir=tmp_path / "tenants", lock_timeout=2.0)


@pytest.fixture
def tenancy(settings: TenantSettings) -> Iterator[Tenancy]:
    """A Tenancy with the control plane at head."""
    t = Tenancy(settings)
    ensure_control(t)
    yield t
    t.close()


@pytest.fixture
def cli_env(settings: TenantSettings, tmp_path: Path) -> dict[str, str]:
    """Environment variables that point manage.py at this test's databases."""
    return {
        "DATABASE_URL": settings.control_url,
        "PORTAL_INSTANCE_PATH": str(tmp_path),
        "PORTAL_TENANT_DIR": str(settings.tenant_dir),
        "PORTAL_LOCK_TIMEOUT": str(settings.lock_timeout),
    }


@pytest.fixture
def app(settings: TenantSettings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The web app over this test's control plane (already at head)."""
    application = create_app(TestConfig, {
        "DATABASE_URL": settings.control_url, "INSTANCE_PATH": str(tmp_path),
        "PORTAL_TENANT_DIR": str(settings.tenant_dir),
    })
    ensure_control(application.extensions["tenancy"])
    yield application
    application.extensions["tenancy"].close()
    with application.app_context():
        from portal.extensions import db

        db.engine.dispose()


@pytest.fixture
def runner(cli_env: dict[str, str]) -> CliRunner:
    """A click runner whose commands see this test's databases."""
    return CliRunner(env=cli_env)


def run_manage(args: list[str], env: dict[str, str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run `python manage.py ARGS` as a real process and return its result."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "manage.py"), *args], env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)
