"""drop-tenant works under the tenant's lock, changes nothing when it cannot drop, and a drop cut short says so."""

import signal
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tenants.core.errors import TenantBusy, TenantNotFound
from tenants.core.registry import TenantRegistry
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.migrate.lifecycle import drop_tenant
from tenants.migrate.overview import tenant_overview, version_rows
from tenants.migrate.selection import Selection, select_tenants
from tests.factories import make_product, make_user
from tests.fault_support import Operator, ctrl_c_around

TABLES = ("roles", "users", "users_roles", "products")
FULL = dict.fromkeys(TABLES, 1)


def rows(tenancy: Tenancy, slug: str) -> dict[str, int]:
    """Count the rows of every tenant table, the association table included."""
    with tenancy.storage(slug).begin() as conn:
        return {table: conn.execute(text("SELECT count(*) FROM " + table)).scalar_one() for table in TABLES}


@pytest.fixture
def fleet(tenancy: Tenancy) -> Iterator[Tenancy]:
    """Two tenants with a row in every table; a drop of one must never touch the other."""
    for slug in ("acme", "other"):
        create_tenant(tenancy, slug)
        make_user(tenancy.storage(slug), role="admin")
        make_product(tenancy.storage(slug))
        assert rows(tenancy, slug) == FULL
    yield tenancy


@pytest.fixture
def impatient(fleet: Tenancy) -> Iterator[Tenancy]:
    """The same fleet, seen by a process that waits 0.3 s for a lock."""
    t = Tenancy(replace(fleet.settings, lock_timeout=0.3))
    yield t
    t.close()


def kept(tenancy: Tenancy, slug: str = "acme") -> None:
    """Assert the tenant is as the fixture made it: active, every row there."""
    tenant = tenancy.registry.get(slug)
    assert (tenant.status, tenant.status_reason) == ("active", None)
    assert rows(tenancy, slug) == FULL


def test_a_drop_removes_only_its_tenant(fleet: Tenancy) -> None:
    storage = fleet.storage("acme")
    drop_tenant(fleet, "acme")
    assert not storage.exists() and fleet.registry.find("acme") is None
    kept(fleet, "other")


def test_a_tenant_another_process_works_in_is_not_dropped(fleet: Tenancy, impatient: Tenancy) -> None:
    # A migration or task holds the tenant's lock: before, its storage was deleted under it.
    with fleet.storage("acme").begin(exclusive=True):
        with pytest.raises(TenantBusy, match="'acme' is locked by another process"):
            drop_tenant(impatient, "acme")
    kept(fleet)
    drop_tenant(impatient, "acme")  # once the lock is free
    assert fleet.registry.find("acme") is None
    kept(fleet, "other")


def test_a_table_kept_locked_fails_the_drop_after_the_lock_timeout(fleet: Tenancy, impatient: Tenancy) -> None:
    if fleet.settings.control_url.startswith("sqlite"):
        pytest.skip("SQLite: a reader does not stop the writer's lock, which is the tenant lock")
    with fleet.storage("acme").begin() as conn:  # a console request reading products, its transaction open
        conn.execute(text("SELECT count(*) FROM products")).scalar_one()
        with pytest.raises(TenantBusy, match="'acme' is in use: one of its tables stayed locked for 0.3 s; "
                                             "nothing was dropped"):
            drop_tenant(impatient, "acme")
    kept(fleet)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OperationalError("UPDATE tenants", {}, Exception("gone"))])
def test_a_control_plane_failing_before_the_mark_changes_nothing(fleet: Tenancy, monkeypatch: pytest.MonkeyPatch,
                                                                error: BaseException) -> None:
    def fails(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(TenantRegistry, "set_status", fails)
    with pytest.raises(type(error)):
        drop_tenant(fleet, "acme")
    monkeypatch.undo()
    kept(fleet)


def dropping_row(tenancy: Tenancy) -> None:
    """Assert acme's row says it is being dropped and how to finish, and no fleet run selects it."""
    tenant = tenancy.registry.get("acme")
    assert tenant.status == "failed"
    assert "being dropped by" in tenant.status_reason and "drop-tenant acme --yes' again" in tenant.status_reason
    chosen = select_tenants(tenancy, Selection())
    assert [t.slug for page in chosen for t in page] == ["other"] and list(chosen.skipped)[0][0] == "acme"
    # list-tenants and tenant-versions show that status and reason, not `unreachable` (storage may be gone)
    for row in (*tenant_overview(tenancy), *version_rows(tenancy)):
        if row["slug"] == "acme":
            assert row["status"] == "failed" and row["error"] == tenant.status_reason


def test_ctrl_c_after_the_mark_keeps_the_data_and_a_second_drop_finishes(fleet: Tenancy,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real = TenantRegistry.set_status

    def marks_then_interrupted(self: TenantRegistry, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)
        raise KeyboardInterrupt

    storage = fleet.storage("acme")
    monkeypatch.setattr(TenantRegistry, "set_status", marks_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        drop_tenant(fleet, "acme")
    monkeypatch.undo()
    dropping_row(fleet)
    assert rows(fleet, "acme") == FULL  # the deletion never became final
    drop_tenant(fleet, "acme")
    assert fleet.registry.find("acme") is None and not storage.exists()
    kept(fleet, "other")


def test_ctrl_c_after_the_deletion_leaves_a_row_that_says_so_and_a_recreated_tenant_starts_empty(
        fleet: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, this left an active row without storage: every run reported it, the console failed on it.
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(TenantRegistry, "remove", interrupted)
    with pytest.raises(KeyboardInterrupt):
        drop_tenant(fleet, "acme")
    monkeypatch.undo()
    dropping_row(fleet)
    assert not fleet.storage("acme").exists()
    drop_tenant(fleet, "acme")
    assert fleet.registry.find("acme") is None
    create_tenant(fleet, "acme")
    assert rows(fleet, "acme") == dict.fromkeys(TABLES, 0)  # nothing of the dropped tenant comes back
    kept(fleet, "other")


@pytest.mark.slow
@pytest.mark.parametrize(("where", "after"), [("TenantRegistry.set_status", True),  # after the mark
                                              ("TenantRegistry.remove", False)])  # after the deletion
def test_drop_tenant_interrupted_by_a_real_ctrl_c_exits_130_and_a_second_drop_finishes(
        fleet: Tenancy, cli_env: dict[str, str], where: str, after: bool) -> None:
    operator, storage = Operator(cli_env), fleet.storage("acme")
    try:
        drop = operator.start(["drop-tenant", "acme", "--yes"],
                              before=ctrl_c_around("tenants.core.registry", where, after=after))
        out, err = operator.wait(drop)
        assert drop.returncode == 128 + signal.SIGINT and "interrupted (Ctrl-C)" in err, out + err
        dropping_row(fleet)
        again = operator.run(["drop-tenant", "acme", "--yes"])
        assert again.returncode == 0 and "dropped tenant acme" in again.stdout, again.stdout + again.stderr
        assert fleet.registry.find("acme") is None and not storage.exists()
        kept(fleet, "other")
    finally:
        operator.close()


def test_a_corrupt_tenant_file_is_dropped(fleet: Tenancy) -> None:
    # Nothing can work in a file that is not a database: there is no lock to wait for.
    if not fleet.settings.control_url.startswith("sqlite"):
        pytest.skip("a SQLite file only")
    storage = fleet.storage("acme")
    storage.engine.dispose()
    storage.path.write_bytes(b"not a database" * 300)
    drop_tenant(fleet, "acme")
    assert fleet.registry.find("acme") is None and not storage.path.exists()
    kept(fleet, "other")


def test_a_drop_that_read_the_tenant_before_it_was_dropped_and_created_again_leaves_the_new_one(
        fleet: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    # The drop reads the row, then waits (on SQLite, up to the lock timeout) for the tenant lock:
    # meanwhile another operator drops the tenant and creates it again. The schema or file it then
    # locks is the new tenant's, and must stay.
    other = Tenancy(fleet.settings)
    real = TenantRegistry.get

    def read_then_replaced(self: TenantRegistry, slug: str):  # type: ignore[no-untyped-def]
        tenant = real(self, slug)
        monkeypatch.setattr(TenantRegistry, "get", real)
        drop_tenant(other, slug)
        create_tenant(other, slug)
        make_user(other.storage(slug), role="admin")
        make_product(other.storage(slug))
        return tenant

    monkeypatch.setattr(TenantRegistry, "get", read_then_replaced)
    try:
        with pytest.raises(TenantNotFound, match="'acme' was dropped, and perhaps created again, meanwhile"):
            drop_tenant(fleet, "acme")
    finally:
        other.close()
    kept(fleet)  # the new acme, active with its rows
    kept(fleet, "other")


def test_two_drops_of_one_tenant_at_once_leave_nothing_of_it(fleet: Tenancy) -> None:
    tenancies = [Tenancy(fleet.settings) for _ in range(2)]
    storage, start, outcomes = fleet.storage("acme"), threading.Barrier(2), []

    def drop(tenancy: Tenancy) -> None:
        start.wait()
        try:
            drop_tenant(tenancy, "acme")
            outcomes.append("dropped")
        except (TenantBusy, TenantNotFound) as e:  # the other took the lock, or had finished
            outcomes.append(type(e).__name__)

    threads = [threading.Thread(target=drop, args=(t,)) for t in tenancies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for tenancy in tenancies:
        tenancy.close()
    assert len(outcomes) == 2 and "dropped" in outcomes, outcomes
    assert fleet.registry.find("acme") is None and not storage.exists()
    kept(fleet, "other")
