"""Bulk creation through the fleet runner: per-tenant all or nothing, on record, with the fleet's exit codes."""

import os
import signal
import socket
import time

import pytest
from sqlalchemy import select

from tenants.core.control_schema import migration_runs, tenant_results
from tenants.core.errors import InvalidUsage
from tenants.core.ledger import ledger_versions
from tenants.fleet.create import create_tenant, create_tenants, read_tenant_file
from tenants.fleet.options import RunOptions
from tenants.migrate.lifecycle import TenantSpec
from tenants.migrate.templates import TEMPLATE_DIR
from tests.chains import add_revision, copy_chain
from tests.conftest import run_manage
from tests.fault_support import Operator, ctrl_c_around, other_sessions, wait_for
from tests.fleet_support import SLOW, live, make_tenants, rows
from tests.migrate.test_templates import scratch_schemas

UNREACHABLE = "postgresql://postgres@127.0.0.1:9/nowhere"


def storage_exists(tenancy, slug: str) -> bool:
    s = tenancy.settings
    from tenants.core.backends import storage_for

    return storage_for(slug, None, s.control_url, s.tenant_dir, tenancy.engines).exists()


def test_one_failing_slug_leaves_nothing_of_it_and_stops_no_other(tenancy):
    make_tenants(tenancy, ["taken"], stock=7)
    specs = [TenantSpec("alpha", "Alpha Ltd"), TenantSpec("taken"), TenantSpec("far", None, UNREACHABLE),
             TenantSpec("beta")]
    report = create_tenants(tenancy, specs, RunOptions(jobs=2))
    assert report.exit_code == 1
    statuses = {r.slug: r.status for r in report.final().values()}
    assert statuses == {"alpha": "ok", "taken": "failed", "far": "unreachable", "beta": "ok"}
    registry = {t.slug: (t.status, t.display_name) for t in tenancy.registry.all()}
    assert registry == {"alpha": ("active", "Alpha Ltd"), "beta": ("active", "Beta"), "taken": ("active", "Taken")}
    assert live(tenancy, "alpha") == live(tenancy, "beta") == "0003"
    assert rows(tenancy, "taken", "SELECT stock FROM products") == [(7,)], "the taken tenant is untouched"
    assert ledger_versions(tenancy.control_engine) == {"alpha": "0003", "beta": "0003", "taken": "0003"}
    with tenancy.control_engine.connect() as conn:
        run = conn.execute(select(migration_runs).where(migration_runs.c.id == report.run_id)).one()
        recorded = {r.tenant_slug: r.status for r in
                    conn.execute(select(tenant_results).where(tenant_results.c.run_id == report.run_id))}
    assert (run.kind, run.status, run.tenants_ok, run.tenants_failed) == ("create-tenant", "failed", 2, 2)
    assert recorded == statuses


def test_a_bulk_of_new_tenants_all_reach_head_in_one_run(tenancy):
    slugs = [f"t{i:03d}" for i in range(12)]
    report = create_tenants(tenancy, [TenantSpec(slug) for slug in slugs], RunOptions(jobs=3))
    assert report.exit_code == 0 and report.counts["ok"] == 12
    assert {t.slug for t in tenancy.registry.all() if t.status == "active"} == set(slugs)
    assert {live(tenancy, slug) for slug in slugs} == {"0003"}
    if tenancy.settings.control_url.startswith("postgresql"):  # three workers at once: one dump of the head, built once
        assert len(list((tenancy.settings.tenant_dir / TEMPLATE_DIR).glob("*.dump.json"))) == 1
        assert scratch_schemas(tenancy) == []
    # and they are ordinary tenants: data goes in, and a later create of one of them is refused
    make_tenants(tenancy, ["t012"])
    assert rows(tenancy, "t012", "SELECT count(*) FROM users") == [(1,)]


@pytest.mark.parametrize("text, message", [
    ("acme\nAcme\n", "line 2: invalid tenant name"),
    ("acme\n# fine\n\nbeta\nacme, Again\n", "line 5: tenant 'acme' is already on line 1"),
    ("acme,Acme,postgresql://x/y,extra\n", "line 1: expected"),
    ("acme,Acme,postgres://u@h/d\n", "line 1: invalid database URL"),
    ("acme," + "x" * 201 + "\n", "line 1: --name must be 1 to 200"),
    ("x\"; drop schema public; --\n", "line 1: invalid tenant name"),
    ("\n# only comments\n", "names no tenant"),
])
def test_a_malformed_file_is_refused_whole(text, message):
    with pytest.raises(InvalidUsage, match=message):
        read_tenant_file(text, "tenants.txt")


def test_the_file_format(tmp_path):
    specs = read_tenant_file('# new customers\nacme\n  globex , "Globex, Inc." \n\nfar,,postgresql://u@h/db\n')
    assert specs == [TenantSpec("acme"), TenantSpec("globex", "Globex, Inc."),
                     TenantSpec("far", None, "postgresql://u@h/db")]


def test_create_tenants_command_refuses_a_bad_file_and_creates_nothing(cli_env, tmp_path, tenancy):
    listing = tmp_path / "tenants.txt"
    listing.write_text("alpha\nbeta\nalpha\n")
    result = run_manage(["create-tenants", "--from", str(listing)], cli_env)
    assert result.returncode == 2 and "line 3" in result.stderr and "Traceback" not in result.stderr
    assert tenancy.registry.all() == []
    assert not storage_exists(tenancy, "alpha")


def test_create_tenants_command_exit_codes(cli_env, tmp_path, tenancy):
    listing = tmp_path / "tenants.txt"
    listing.write_text(f"alpha, Alpha\nfar,,{UNREACHABLE}\n")
    result = run_manage(["create-tenants", "--from", str(listing), "--json"], cli_env)
    assert result.returncode == 1, result.stderr
    assert '"unreachable"' in result.stdout and '"kind": "create-tenant"' in result.stdout
    assert [t.slug for t in tenancy.registry.all()] == ["alpha"]
    again = run_manage(["create-tenant", "beta", "gamma"], cli_env)
    assert again.returncode == 0, again.stderr
    assert "create-tenant ok: 2 ok" in again.stdout
    named = run_manage(["create-tenant", "delta", "epsilon", "--name", "Delta"], cli_env)
    assert named.returncode == 2 and tenancy.registry.find("delta") is None
    twice = run_manage(["create-tenant", "zeta", "zeta"], cli_env)
    assert twice.returncode == 2 and tenancy.registry.find("zeta") is None


def test_a_killed_bulk_leaves_every_tenant_created_or_recoverable(settings, cli_env, tmp_path):
    chain = copy_chain(tmp_path)
    add_revision(chain, "0004", "0003", SLOW.format(seconds=0.3))  # PostgreSQL: each new schema takes 0.3 s
    env = {**cli_env, "PORTAL_REVISION_DIR": str(chain), "PYTHONUNBUFFERED": "1"}
    slugs = [f"k{i:02d}" for i in range(30)]
    listing = tmp_path / "tenants.txt"
    listing.write_text("\n".join(slugs) + "\n")
    operator = Operator(env)
    try:
        process = operator.start(["create-tenants", "--from", str(listing), "--jobs", "2"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once the first tenant is through, mid-bulk
            line = process.stdout.readline()
            if " ok " in line or not line:
                break
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if settings.control_url.startswith("postgresql"):
            # A killed client's server session lets its locks go only once it notices the client is
            # gone (at the end of the statement it runs): until then re-creating is rightly TenantBusy.
            wait_for(lambda: other_sessions(settings.control_url,
                                             "application_name LIKE 'tenant-%' AND state <> 'idle'") == 0)
        from tenants.core.tenancy import Tenancy
        from tests.fleet_support import with_chain

        tenancy = Tenancy(with_chain(settings, chain))
        try:
            registry = {t.slug: t.status for t in tenancy.registry.all()}
            assert "active" in registry.values(), "the kill came after the first tenant was created"
            assert set(registry.values()) <= {"active", "provisioning"}
            for slug in slugs:
                if registry.get(slug) == "active":
                    assert live(tenancy, slug) == "0004"
                elif slug not in registry:
                    assert not storage_exists(tenancy, slug), f"{slug}: storage without a registry row"
            left = [slug for slug, status in registry.items() if status == "provisioning"]
            # What the kill interrupted is finished by creating it again (its creator is gone).
            for slug in left:
                assert create_tenant(tenancy, slug).status == "active"
            rest = [slug for slug in slugs if slug not in registry]
            if rest:
                assert create_tenants(tenancy, [TenantSpec(s) for s in rest], RunOptions(jobs=2)).exit_code == 0
            assert {t.status for t in tenancy.registry.all()} == {"active"}
            assert {live(tenancy, slug) for slug in slugs} == {"0004"}
        finally:
            tenancy.close()
    finally:
        operator.close()


INTERRUPT_AFTER_A_CREATION = ctrl_c_around("tenants.fleet.runner", "run_unit", after=True)


def test_ctrl_c_just_after_a_creation_records_the_tenant_created(settings, cli_env, tenancy):
    # With one job the tenant is created in the runner's process: Ctrl-C after its creation committed
    # interrupts it there. The registry says it was created; "rolled back" would be a lie in the ledger.
    operator = Operator(cli_env)
    try:
        run = operator.start(["create-tenant", "n1", "n2", "n3", "--jobs", "1"], before=INTERRUPT_AFTER_A_CREATION)
        out, err = operator.wait(run)
        assert run.returncode == 130, out + err
        assert "[1/3 n1] base -> 0003 ok" in out and "2 not started" in out, out
    finally:
        operator.close()
    assert {t.slug: t.status for t in tenancy.registry.all()} == {"n1": "active"}
    assert live(tenancy, "n1") == "0003" and not storage_exists(tenancy, "n2")
    with tenancy.control_engine.connect() as conn:
        recorded = conn.execute(select(tenant_results.c.tenant_slug, tenant_results.c.status,
                                       tenant_results.c.to_revision, tenant_results.c.detail)).all()
    assert [tuple(r) for r in recorded] == [
        ("n1", "ok", "0003", "created; then interrupted (Ctrl-C) (read back from the registry)")]


@pytest.mark.parametrize("status", ["active", "suspended", "provisioning"])
def test_ctrl_c_as_a_taken_slug_fails_never_claims_its_row(settings, cli_env, tenancy, status):
    # The first slug is another tenant's (or being created by a live process): the creation failed
    # with TenantExists, then Ctrl-C. Its row is not this run's creation, whatever its status.
    make_tenants(tenancy, ["taken"])
    if status != "active":
        tenancy.registry.set_status("taken", status, f"being created by pid {os.getpid()} on {socket.gethostname()}")
    operator = Operator(cli_env)
    try:
        run = operator.start(["create-tenant", "taken", "n1", "--jobs", "1"], before=INTERRUPT_AFTER_A_CREATION)
        out, err = operator.wait(run)
        assert run.returncode == 130, out + err
    finally:
        operator.close()
    assert {t.slug: t.status for t in tenancy.registry.all()} == {"taken": status}
    run_id = out.split(" run ")[-1].split()[0]
    with tenancy.control_engine.connect() as conn:
        recorded = conn.execute(select(tenant_results.c.tenant_slug, tenant_results.c.status, tenant_results.c.error)
                                .where(tenant_results.c.run_id == run_id)).all()
    assert [tuple(r) for r in recorded] == [
        ("taken", "failed", "tenant 'taken' already exists; then interrupted (Ctrl-C): it is unchanged")]


INTERRUPT_WHILE_ONE_IS_CREATED = ctrl_c_around("tenants.migrate.lifecycle", "bring_to_head")


def test_ctrl_c_while_one_tenant_is_created_leaves_nothing_and_closes_its_run(settings, cli_env, tenancy):
    # One slug is a run of its own (not the fleet runner's): its row must not stay `running` either.
    operator = Operator(cli_env)
    try:
        run = operator.start(["create-tenant", "solo"], before=INTERRUPT_WHILE_ONE_IS_CREATED)
        out, err = operator.wait(run)
        assert run.returncode == 130 and err == "Error: interrupted (Ctrl-C)\n", out + err
    finally:
        operator.close()
    assert tenancy.registry.find("solo") is None and not storage_exists(tenancy, "solo")
    with tenancy.control_engine.connect() as conn:
        runs = conn.execute(select(migration_runs.c.id, migration_runs.c.status)
                            .where(migration_runs.c.kind == "create-tenant")).all()
        assert [status for _, status in runs] == ["interrupted"]
        recorded = conn.execute(select(tenant_results.c.tenant_slug, tenant_results.c.status)
                                .where(tenant_results.c.run_id == runs[0][0])).all()
    assert [tuple(r) for r in recorded] == [("solo", "failed")]
