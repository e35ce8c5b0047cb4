"""The control plane is brought to head once per Tenancy (one per process), not on every call."""

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
