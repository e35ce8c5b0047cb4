"""Tenants on several database servers: grouping, the per-server bound of the pool, an unreachable server."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tenants.core.clock import utcnow
from tenants.core.registry import Tenant
from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import downgrade_tenants, upgrade_tenants
from tenants.fleet.servers import ServerSlots, assign_slots, by_server, interleave, server_key
from tenants.migrate.control import ensure_control
from tenants.migrate.plan import TenantPlan
from tenants.migrate.selection import Selection
from tests.conftest import PG_ADMIN_URL
from tests.fleet_support import SLOW, live, make_tenants, with_chain, write_chain
from tests.pg_cluster import free_port
from tests.scale_support import database_on, intervals, max_overlap

SLOW_CHAIN = {"0004": ("0003", SLOW.format(seconds=0.25), "")}


@pytest.fixture
def far_db(server2: str) -> Iterator[str]:
    """A fresh database on the second server."""
    with database_on(server2) as url:
        yield url


def _item(slug: str, url: str | None = None) -> TenantPlan:
    return TenantPlan(Tenant(slug, slug, "active", None, url, utcnow()), "pending")


@pytest.mark.parametrize("url, key", [
    ("postgresql://portal:secret@db1:5433/portal", "postgresql://db1:5433"),
    ("postgresql://portal@db1/other", "postgresql://db1:5432"),
    ("postgresql+psycopg2://portal@db1:5432/third", "postgresql://db1:5432"),
    ("sqlite:////srv/tenants/acme.sqlite3", "sqlite:/srv/tenants"),
])
def test_server_key_is_host_and_port_or_the_sqlite_folder(url: str, key: str) -> None:
    assert server_key(url) == key


def test_slots_split_each_server_and_the_pool_takes_servers_in_turn(tmp_path: Path) -> None:
    settings = TenantSettings(control_url="postgresql://p@near/control", tenant_dir=tmp_path)
    items = [_item(f"a{i}") for i in range(5)] + [_item(f"b{i}", "postgresql://p@far:5544/t") for i in range(2)]
    placed = {item.slug: (server, slot, position) for item, server, slot, position in assign_slots(settings, items, 2)}
    assert placed["a0"] == ("postgresql://near:5432", 0, 0) and placed["a1"][1:] == (1, 0)
    assert placed["a4"][1:] == (0, 2) and placed["b1"] == ("postgresql://far:5544", 1, 0)
    assert [i.slug for i in interleave(by_server(settings, items))[:4]] == ["a0", "b0", "a1", "b1"]
    slots = ServerSlots(settings, 1)
    slots.add(items)
    first, second = slots.take_batch(1), slots.take_batch(1)
    assert slugs(first + second) == ["a0", "b0"] and slots.take_batch(1) == []  # both servers at 1
    slots.release(second)
    assert slugs(slots.take_batch(1)) == ["b1"]
    assert [i.slug for i in interleave({"x": [_item("x1")], "y": []})] == ["x1"]


def slugs(batch: list[TenantPlan]) -> list[str]:
    return [item.slug for item in batch]


def test_a_batch_holds_tenants_of_one_server_in_one_slot(tmp_path: Path) -> None:
    # A batch runs in one worker, one tenant after another: it holds one slot of its server, so
    # --jobs-per-server 1 still sends batches, and never two servers, which it would run one after the other.
    settings = TenantSettings(control_url="postgresql://p@near/control", tenant_dir=tmp_path)
    items = [_item(f"a{i}") for i in range(4)] + [_item(f"b{i}", "postgresql://p@far:5544/t") for i in range(4)]
    slots = ServerSlots(settings, 1)
    slots.add(items)
    near = slots.take_batch(3)
    assert slugs(near) == ["a0", "a1", "a2"] and slugs(slots.take_batch(3)) == ["b0", "b1", "b2"]
    assert slots.take_batch(3) == [] and slots.queued() == 2  # both servers at their bound
    slots.release(near)
    assert slugs(slots.take_batch(3)) == ["a3"] and slots.take_batch(3) == []


def test_without_a_bound_the_next_batch_goes_to_the_server_with_fewest_under_way(tmp_path: Path) -> None:
    settings = TenantSettings(control_url="postgresql://p@near/control", tenant_dir=tmp_path)
    items = [_item(f"a{i}") for i in range(6)] + [_item(f"b{i}", "postgresql://p@far:5544/t") for i in range(6)]
    free = ServerSlots(settings, None)
    free.add(items)
    first, second = free.take_batch(2), free.take_batch(2)
    assert slugs(first) == ["a0", "a1"] and slugs(second) == ["b0", "b1"]  # one server each
    assert slugs(free.take_batch(2)) == ["a2", "a3"]  # a tie: the servers take turns
    assert slugs(free.take_batch(2)) == ["b2", "b3"]
    free.release(second)  # far now has one batch under way, near two: far's worker was freed
    assert slugs(free.take_batch(2)) == ["b4", "b5"]
    assert slugs(free.take_batch(2)) == ["a4", "a5"] and free.queued() == 0 and free.take_batch(2) == []


def test_taking_from_servers_all_at_their_bound_reads_no_queued_tenant(tmp_path: Path) -> None:
    # The runner asks after every finished batch; a scan of the whole queue each time made a
    # bounded 10,000-tenant run quadratic (65 s of the runner's CPU in dispatch alone).
    class Untouchable:
        @property
        def tenant(self):  # type: ignore[no-untyped-def]
            raise AssertionError("a queued tenant was read though every server is at its bound")

    settings = TenantSettings(control_url="postgresql://p@near/control", tenant_dir=tmp_path)
    slots = ServerSlots(settings, 1)
    slots.add([_item("a0"), _item("b0", "postgresql://p@far:5544/t")])
    taken = [slots.take_batch(8), slots.take_batch(8)]
    for queue in slots.queues.values():
        queue.extend([Untouchable()] * 3)  # type: ignore[list-item]
    assert slots.take_batch(8) == [] and slots.queued() == 6
    slots.release(taken[0])
    for queue in slots.queues.values():
        queue.clear()
    slots.queues["postgresql://near:5432"].append(_item("a1"))
    assert slugs(slots.take_batch(8)) == ["a1"]


def test_pool_bound_per_server_keeps_both_servers_busy(pg_control_url: str, far_db: str, tmp_path: Path) -> None:
    settings = TenantSettings(control_url=pg_control_url, tenant_dir=tmp_path / "tenants", lock_timeout=2.0)
    base = Tenancy(settings)
    ensure_control(base)
    fleet = Tenancy(with_chain(settings, write_chain(tmp_path, SLOW_CHAIN)))
    try:
        for i in range(4):
            create_tenant(base, f"near{i}")
            create_tenant(base, f"far{i}", database_url=far_db)
        # Without a bound the pool puts two processes on one server at once: the timeline sees it.
        free = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=4))
        spans = intervals(fleet.control_engine, free.run_id)
        assert free.exit_code == 0 and max_overlap([v for s, v in spans.items() if s.startswith("near")]) >= 2
        assert downgrade_tenants(fleet, Selection(), "0003", RunOptions(jobs=4)).exit_code == 0
        bound = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=4, jobs_per_server=1))
        assert bound.exit_code == 0 and {live(fleet, s) for s in bound.final()} == {"0004"}
        spans = intervals(fleet.control_engine, bound.run_id)
        assert max_overlap([v for s, v in spans.items() if s.startswith("near")]) == 1
        assert max_overlap([v for s, v in spans.items() if s.startswith("far")]) == 1
        assert max_overlap(list(spans.values())) == 2  # ... and neither server idled while the other worked
    finally:
        fleet.close()
        base.close()


def test_pool_bound_per_server_on_both_backends(tenancy: Tenancy, settings: TenantSettings, tmp_path: Path) -> None:
    make_tenants(tenancy, ["acme", "beta", "gamma"])
    fleet = Tenancy(with_chain(settings, write_chain(tmp_path, SLOW_CHAIN)))
    try:
        report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=3, jobs_per_server=1))
        assert report.exit_code == 0 and report.to_dict()["counts"]["ok"] == 3
        assert max_overlap(list(intervals(fleet.control_engine, report.run_id).values())) == 1
    finally:
        fleet.close()


def test_unreachable_server_fails_only_its_own_tenants(pg_control_url: str, far_db: str, tmp_path: Path) -> None:
    settings = TenantSettings(control_url=pg_control_url, tenant_dir=tmp_path / "tenants", lock_timeout=2.0)
    base = Tenancy(settings)
    ensure_control(base)
    fleet = Tenancy(with_chain(settings, write_chain(tmp_path, {"0004": ("0003", "op.execute('SELECT 1')", "")})))
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/gone"
    try:
        for i in range(2):
            create_tenant(base, f"near{i}")
            create_tenant(base, f"far{i}", database_url=far_db)
            base.registry.add(f"dead{i}", f"Dead {i}", dead)
            base.registry.set_status(f"dead{i}", "active")
        report = upgrade_tenants(fleet, Selection(), options=RunOptions(jobs=2, jobs_per_server=1))
        final = {slug: result.status for slug, result in report.final().items()}
        assert report.exit_code == 1
        assert final == {"near0": "ok", "near1": "ok", "far0": "ok", "far1": "ok",
                         "dead0": "unreachable", "dead1": "unreachable"}
        assert f"127.0.0.1:{dead.split(':')[2].split('/')[0]}" in report.final()["dead0"].error
    finally:
        fleet.close()
        base.close()


@pytest.mark.postgres
def test_the_bulk_version_read_reads_several_databases_at_once(pg_url: str, tmp_path: Path) -> None:
    """Each database is read in a session of its own, all at the same time (was: one after another).

    Each tenant's alembic_version is locked by another session; the locks are released only once
    both reads are seen waiting together, which one-after-the-other reads never are.
    """
    import threading
    import time

    import psycopg2

    from tenants.migrate.versions import read_versions

    with database_on(PG_ADMIN_URL) as other:
        settings = TenantSettings(control_url=pg_url, tenant_dir=tmp_path, lock_timeout=5.0)
        tenancy = Tenancy(settings)
        tenants = [Tenant("near", "near", "active", None, None, utcnow()),
                   Tenant("far", "far", "active", None, other, utcnow())]
        holders = []
        for url, slug in ((pg_url, "near"), (other, "far")):
            conn = psycopg2.connect(url)
            with conn.cursor() as cur:
                cur.execute(f"CREATE SCHEMA tenant_{slug}; CREATE TABLE tenant_{slug}.alembic_version "
                            f"(version_num varchar(32) PRIMARY KEY); INSERT INTO tenant_{slug}.alembic_version "
                            "VALUES ('0003')")
            conn.commit()
            with conn.cursor() as cur:
                cur.execute(f"LOCK TABLE tenant_{slug}.alembic_version IN ACCESS EXCLUSIVE MODE")
            holders.append(conn)
        seen_together = threading.Event()

        def release() -> None:
            watcher = psycopg2.connect(pg_url)
            watcher.autocommit = True
            deadline = time.monotonic() + 3.0
            try:
                with watcher.cursor() as cur:
                    while time.monotonic() < deadline and not seen_together.is_set():
                        cur.execute("SELECT count(DISTINCT l.database) FROM pg_locks l JOIN pg_database d "
                                    "ON d.oid = l.database WHERE NOT l.granted AND d.datname = ANY(%s)",
                                    ([url.rsplit("/", 1)[1] for url in (pg_url, other)],))
                        if cur.fetchone()[0] == 2:
                            seen_together.set()
                        time.sleep(0.02)
            finally:
                watcher.close()
                for conn in holders:
                    conn.rollback()
                    conn.close()

        releaser = threading.Thread(target=release)
        releaser.start()
        try:
            reads = read_versions(tenancy, tenants)
        finally:
            releaser.join()
            tenancy.close()
        assert {slug: read.revision for slug, read in reads.items()} == {"near": "0003", "far": "0003"}
        assert seen_together.is_set(), "the second database was read only after the first"
