"""Shared fixtures: real PostgreSQL databases and SQLite folders, made per test and removed after.

PostgreSQL is the machine's server (PORTAL_TEST_PG_URL, default the local trust login). When it
cannot be reached the PostgreSQL half of the suite is skipped, except under CI=true, where
that is a failure.
"""

import os
import queue
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import psycopg2
import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy.engine import make_url

from portal import create_app
from portal.config import TestConfig
from tenants.core.settings import PROJECT_ROOT, TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control

pytest_plugins = ["tests.console_support"]

# psycopg2-binary bundles its own libpq, OpenSSL and Kerberos (GSSAPI), and starts them on every
# connect (an SSL request even to a server without SSL; a GSS credentials probe). Beside Python's
# own OpenSSL and with several threads connecting, that can segfault (psycopg/psycopg2#543,
# psycopg/psycopg#1213): a test worker did, twice, in psycopg2.connect. The local test server has
# SSL off, so nothing changes for the tests but that neither library is started; libpq reads
# these variables, and the subprocesses the tests start inherit them. The database copies and
# drops made beside the tests (below) go through psql, so no helper thread uses libpq at all.
os.environ["PGGSSENCMODE"] = "disable"
os.environ["PGSSLMODE"] = "disable"

# Found once, at start: the Dropper's and Copies' threads run psql while a test may have pointed
# PATH elsewhere (tests/migrate/test_pg_template.py hides pg_dump that way), and a lookup then
# failed three drops at the end of a CI run.
PSQL = shutil.which("psql")
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


def admin_execute(sql: str, admin_url: str = PG_ADMIN_URL) -> None:
    """Run one statement on the server as the admin login, outside a transaction (CREATE/DROP DATABASE).

    Through psql, not psycopg2: the Dropper's and Copies' threads call this while the test itself
    connects, and libpq in another process cannot crash this one (see PGSSLMODE above).
    """
    if PSQL is None:
        raise RuntimeError("psql is not on PATH: the tests create and drop their databases with it")
    command = [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin_url, "-c", sql]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except OSError:  # psql never started (seen once in a full run: EFAULT from exec): nothing ran, so once more
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise RuntimeError(f"psql failed ({done.returncode}): {lines[0] if lines else sql}")


def create_pg_database(prefix: str = "tp_test", admin_url: str = PG_ADMIN_URL, template: str | None = None) -> str:
    """Create a uniquely named database on the server of `admin_url`, a copy of `template` if given; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    admin_execute(f'CREATE DATABASE "{name}"{copy}', admin_url)  # test scaffolding: names made here, not user input
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    """Drop a database made by create_pg_database, ending its sessions."""
    parsed = make_url(url)
    admin_url = parsed.set(database="postgres").render_as_string(hide_password=False)
    admin_execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)', admin_url)


class Dropper:
    """Drops the tests' databases on threads of its own, as soon as they are handed in.

    PostgreSQL 15 makes every DROP DATABASE wait for a checkpoint of the whole server; a test
    hands its database here at teardown instead of waiting for that. Drops that wait at the
    same time share a checkpoint, hence a few threads (measured: 4 at once took a quarter of
    the time per database of one after another). `close()` waits for every drop and raises if
    any failed, so none is left behind silently.
    """

    THREADS = 4

    def __init__(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._run, name=f"drop-test-databases-{i}", daemon=True)
                         for i in range(self.THREADS)]
        for thread in self._threads:
            thread.start()
        self.failures: list[str] = []

    def drop(self, url: str) -> None:
        self._queue.put(url)

    def _run(self) -> None:
        while (url := self._queue.get()) is not None:
            try:
                drop_pg_database(url)
            except Exception as e:  # reported by close(), at the end of the session
                self.failures.append(f"{make_url(url).database}: {e}")

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        if self.failures:
            raise RuntimeError("test databases not dropped: " + "; ".join(self.failures))


class Copies:
    """Copies of one template database, each made before a test asks for it, on a thread of its own.

    CREATE DATABASE ... TEMPLATE takes 0.02-0.3 s (longer while other suites use the server): the
    next test's copy is made while the current test runs. Each copy goes to one test only; the one
    made ahead and never taken is dropped by `close()`.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self._ready: queue.Queue[str | Exception] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"copy-{template}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                made: str | Exception = create_pg_database(template=self.template)
            except Exception as e:  # handed to the test that takes it
                made = e
            while True:
                try:
                    self._ready.put(made, timeout=0.1)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        if isinstance(made, str):
                            drop_pg_database(made)
                        return

    def take(self) -> str:
        """Return a fresh copy of the template, made for the caller alone."""
        made = self._ready.get(timeout=120)
        if isinstance(made, Exception):
            raise made
        return made

    def close(self) -> None:
        """Stop making copies and drop the one made ahead, if any."""
        self._stop.set()
        self._thread.join()
        while not self._ready.empty():
            made = self._ready.get_nowait()
            if isinstance(made, str):
                drop_pg_database(made)


@pytest.fixture(scope="session")
def pg_drops() -> Iterator[Dropper]:
    """The session's Dropper: every database handed to it is gone when the session ends."""
    dropper = Dropper()
    yield dropper
    dropper.close()


@pytest.fixture
def pg_url(pg_drops: Dropper) -> Iterator[str]:
    """A fresh, empty PostgreSQL database of this test's own (no control plane in it)."""
    require_postgres()
    url = create_pg_database()
    yield url
    pg_drops.drop(url)


def _worker() -> str:
    """The xdist worker running this process ('main' without xdist), for names of per-worker things."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@contextmanager
def template_database(prefix: str, build: Callable[[str], None]) -> Iterator[str]:
    """Make a database, fill it with `build(url)`, close it to connections; yield its name; drop it after.

    `build` must close every connection it opened: PostgreSQL refuses to copy a database that
    has sessions, and after the build none can be opened (ALLOW_CONNECTIONS false).
    """
    require_postgres()
    url = create_pg_database(f"{prefix}_{_worker()}")
    name = make_url(url).database
    try:
        build(url)
        admin_execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        yield name
    finally:
        drop_pg_database(url)


def migrated_control(url: str, folder: Path) -> None:
    """Bring the control plane of `url` to head by the real upgrade, and close every connection."""
    builder = Tenancy(TenantSettings(control_url=url, tenant_dir=folder / "tenants"))
    try:
        ensure_control(builder)
    finally:
        builder.close()


def seeded_console(url: str, folder: Path) -> None:
    """Build the console world (tests/console_support.py's seed) over `url`, and close every connection."""
    from tests.console_support import Console, seed  # a plugin of this conftest: imported once pytest loaded it

    application = make_app(url, folder)
    try:
        ensure_control(application.extensions["tenancy"])
        seed(Console(application))
    finally:
        close_app(application)


@pytest.fixture(scope="session")
def pg_control_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database whose control plane is at head: made once per session and xdist worker, dropped at the end."""
    folder = tmp_path_factory.mktemp("control-template")
    with template_database("tp_tpl", lambda url: migrated_control(url, folder)) as name:
        yield name


@pytest.fixture(scope="session")
def pg_control_copies(pg_control_template: str) -> Iterator[Copies]:
    """Copies of the control-plane template, one made ahead (closed before the template is dropped)."""
    copies = Copies(pg_control_template)
    yield copies
    copies.close()


@pytest.fixture
def pg_control_url(pg_control_copies: Copies, pg_drops: Dropper) -> Iterator[str]:
    """A PostgreSQL database of this test's own with the control plane already at head (a template copy)."""
    url = pg_control_copies.take()
    yield url
    pg_drops.drop(url)


@pytest.fixture(scope="session")
def pg_console_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database holding the seeded console world (control plane and tenant schemas), once per session and worker."""
    folder = tmp_path_factory.mktemp("console-template-pg")
    with template_database("tp_ctpl", lambda url: seeded_console(url, folder)) as name:
        yield name


@pytest.fixture(scope="session")
def pg_console_copies(pg_console_template: str) -> Iterator[Copies]:
    """Copies of the console template, one made ahead (closed before the template is dropped)."""
    copies = Copies(pg_console_template)
    yield copies
    copies.close()


@pytest.fixture
def pg_console_url(pg_console_copies: Copies, pg_drops: Dropper) -> Iterator[str]:
    """A PostgreSQL database of this test's own holding the seeded console world (a template copy)."""
    url = pg_console_copies.take()
    yield url
    pg_drops.drop(url)


@pytest.fixture(scope="session")
def sqlite_console_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the seeded console world in SQLite files (portal.sqlite3, tenants/*.sqlite3), made once.

    Tests copy the files; the folder goes with pytest's temporary directories.
    """
    folder = tmp_path_factory.mktemp("console-template-sqlite")
    seeded_console(f"sqlite:///{folder / 'portal.sqlite3'}", folder)
    return folder


@pytest.fixture(scope="session")
def server2() -> Iterator[str]:
    """A second, throw-away PostgreSQL server (tests/pg_cluster.py), started once for the session's tests that need it.

    Its tests share one xdist group (see pytest_collection_modifyitems), so one worker starts it.
    """
    require_postgres()
    from tests.pg_cluster import second_cluster

    with second_cluster() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite files and once on PostgreSQL schemas."""
    return request.param


@pytest.fixture(autouse=True)
def _backups_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every backup a test takes (in-process, or in the manage.py processes it starts) in its own folder.

    Without this, runs that back tenants up outside a CLI environment wrote into the checkout's
    instance/backups, which outlived the test.
    """
    monkeypatch.setenv("PORTAL_BACKUP_DIR", str(tmp_path / "backups"))


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> TenantSettings:
    """Tenancy settings for this test: a control database and tenant storage of its own.

    On PostgreSQL the control database comes with the control plane at head (see pg_control_url),
    so `ensure_control()` is a read; a test marked `empty_control` gets an empty one instead.
    A test that uses the `console` fixture gets a copy of the seeded console world instead
    (pg_console_url, or copies of sqlite_console_template's files).
    """
    seeded = "console" in request.fixturenames
    if backend == "postgresql":
        if request.node.get_closest_marker("empty_control") is not None:
            control_url = request.getfixturevalue("pg_url")
        else:
            control_url = request.getfixturevalue("pg_console_url" if seeded else "pg_control_url")
    else:
        control_url = f"sqlite:///{tmp_path / 'portal.sqlite3'}"
        if seeded:
            template: Path = request.getfixturevalue("sqlite_console_template")
            shutil.copyfile(template / "portal.sqlite3", tmp_path / "portal.sqlite3")
            shutil.copytree(template / "tenants", tmp_path / "tenants")
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


def make_app(control_url: str, instance: Path, tenant_dir: Path | None = None) -> Flask:
    """The web app over `control_url`, its instance folder and SQLite tenants in `instance` (or `tenant_dir`)."""
    return create_app(TestConfig, {"DATABASE_URL": control_url, "INSTANCE_PATH": str(instance),
                                   "PORTAL_TENANT_DIR": str(tenant_dir or instance / "tenants")})


def close_app(application: Flask) -> None:
    """Close every database connection the app holds."""
    application.extensions["tenancy"].close()
    with application.app_context():
        from portal.extensions import db

        db.engine.dispose()


@pytest.fixture
def app(settings: TenantSettings, tmp_path: Path) -> Iterator[Flask]:
    """The web app over this test's control plane (already at head)."""
    application = make_app(settings.control_url, tmp_path, settings.tenant_dir)
    ensure_control(application.extensions["tenancy"])
    yield application
    close_app(application)


@pytest.fixture
def runner(cli_env: dict[str, str]) -> CliRunner:
    """A click runner whose commands see this test's databases."""
    return CliRunner(env=cli_env)


def command_group(*modules: Any) -> click.Group:
    """A click group of the COMMANDS of the given tenants.cli modules: the operator commands without the web app."""
    group = click.Group()
    for module in modules:
        for command in module.COMMANDS:
            group.add_command(command)
    return group


def run_manage(args: list[str], env: dict[str, str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run `python manage.py ARGS` as a real process and return its result."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "manage.py"), *args], env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)


def _limits_expiry_race(args: Any) -> bool:
    """Whether a thread died of limits' known race: MemoryStorage.clear() against its expiry timer.

    limits 5.8.0 (the newest) pops a key in `clear` without the lock its timer thread
    (`__expire_events`) takes, which then raises KeyError on the key it was expiring. The
    sign-in throttle clears an account's attempts after a good sign-in; the counts stay right
    (the timer restarts on the next hit), only that thread dies.
    """
    import traceback

    return args.exc_type is KeyError and any(
        frame.name == "__expire_events" and frame.filename.endswith(os.path.join("limits", "storage", "memory.py"))
        for frame in traceback.extract_tb(args.exc_traceback))


@pytest.hookimpl(trylast=True)  # after pytest's own hook is in place: this one wraps it
def pytest_configure(config: pytest.Config) -> None:
    """Let every thread's death fail its test, except limits' known race (see _limits_expiry_race)."""
    report = threading.excepthook

    def excepthook(args: Any) -> None:
        if not _limits_expiry_race(args):
            report(args)

    threading.excepthook = excepthook


# Fixtures that put a test on PostgreSQL whatever its backend parameter says.
PG_FIXTURES = {"pg_url", "pg_control_url", "pg_console_url", "server2"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every PostgreSQL test `postgres`, and keep tests that share a costly server on one xdist worker."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        fixtures = set(getattr(item, "fixturenames", ()))
        if params.get("backend") == "postgresql" or fixtures & PG_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if "server2" in fixtures:  # initdb, then runs over two servers: seconds each
            item.add_marker(pytest.mark.slow)
            group(item, "server2")  # one second cluster per session, not one per worker
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.postgres)
            group(item, "browser")  # one Chromium and one served console, not one per worker


def group(item: pytest.Item, name: str) -> None:
    """Put the test in an xdist group (`--dist loadgroup` runs a group on one worker); no-op without xdist."""
    if item.config.pluginmanager.hasplugin("xdist"):
        item.add_marker(pytest.mark.xdist_group(name))
