"""The control plane is brought to head once per Tenancy (one per process), not on every call."""

import pytest
from sqlalchemy import event

from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control


def test_ensure_control_upgrades_once_then_touches_no_database(settings):
    tenancy = Tenancy(settings)
    first = ensure_control(tenancy)
    assert first[1] == tenancy.control_scripts.get_current_head()
    checkouts: list[object] = []
    event.listen(tenancy.control_engine, "checkout", lambda *args: checkouts.append(args))
    assert ensure_control(tenancy) == first
    assert ensure_control(tenancy) == first
    assert checkouts == [], "a second call must not even open a connection"
    tenancy.close()


def test_a_new_tenancy_checks_again_and_finds_the_control_plane_at_head(settings):
    first = Tenancy(settings)
    head = ensure_control(first)[1]
    first.close()
    second = Tenancy(settings)
    assert ensure_control(second) == (head, head)
    second.close()


@pytest.mark.empty_control  # built up to c700 here, filled, then moved over c800 and back
def test_c800_up_and_down_keeps_every_dispatched_row(settings):
    # On SQLite, dropping the column rebuilds dispatched_tenants: its rows, and its parents', must come through.
    from sqlalchemy import column, func, insert, select, table

    from tenants.core.clock import utcnow
    from tenants.core.control_schema import dispatched_runs, dispatched_tenants, migration_runs
    from tenants.core.ledger import start_run
    from tenants.migrate.driver import run_steps, steps_between

    tenancy = Tenancy(settings)
    engine, scripts = tenancy.control_engine, tenancy.control_scripts
    opts = {"transactional_ddl": True, "render_as_batch": engine.dialect.name == "sqlite"}
    with engine.begin() as conn:
        run_steps(conn, steps_between(scripts, None, "c700"), opts)
    run_id = start_run(engine, "sql", None)
    # dispatched_tenants as it is below c800: its columns but started_at.
    below_c800 = table("dispatched_tenants", *[column(c.name) for c in dispatched_tenants.c if c.name != "started_at"])
    with engine.begin() as conn:
        conn.execute(insert(dispatched_runs).values(run_id=run_id, unit="task:sql", payload="{}", jobs_per_server=1,
                                                    broker="b", queue="q", created_at=utcnow()))
        conn.execute(insert(below_c800), [{"run_id": run_id, "tenant_slug": f"t{i}", "planned": "pending",
                                           "server": "s", "slot": 0, "position": i, "resent": 0} for i in range(5)])
    counts = {}
    for start, target, down in (("c700", "c800", False), ("c800", "c700", True)):
        with engine.begin() as conn:
            run_steps(conn, steps_between(scripts, start, target, downgrade=down), opts)
            counts[target] = [conn.execute(select(func.count()).select_from(t)).scalar()
                              for t in (migration_runs, dispatched_runs, below_c800)]
    assert counts == {"c800": [1, 1, 5], "c700": [1, 1, 5]}
    tenancy.close()
