"""Grant checks: superusers, staff per tenant/model/action, tenant administrators."""

import pytest

from portal.permissions import Grant, Principal, can, can_control, grants_all_tenants, may_enter, visible_slugs


def staff_member(*grants: Grant, superuser: bool = False) -> Principal:
    return Principal("t", "staff", 1, "s@example.com", is_superuser=superuser, grants=grants)


def test_superuser_may_do_everything() -> None:
    root = staff_member(superuser=True)
    assert can(root, "acme", "products", "delete") and may_enter(root, "x") and can_control(root, "staff", "add")


@pytest.mark.parametrize(("action", "allowed"), [("view", True), ("change", True), ("add", False), ("delete", False)])
def test_staff_grant_is_per_tenant_model_and_action(action: str, allowed: bool) -> None:
    alice = staff_member(Grant("acme", "products", can_view=False, can_change=True))
    assert can(alice, "acme", "products", action) is allowed  # change implies view
    assert not can(alice, "globex", "products", action)
    assert not can(alice, "acme", "users", action)


def test_grant_without_tenant_covers_every_tenant_but_not_control_views() -> None:
    support = staff_member(Grant(None, "users"))
    assert can(support, "anything", "users", "view") and not can(support, "anything", "users", "change")
    assert grants_all_tenants(support) and not can_control(support, "tenants", "view")


def test_control_grants_need_the_all_tenants_scope() -> None:
    assert can_control(staff_member(Grant(None, "tenants")), "tenants", "view")
    assert not can_control(staff_member(Grant("acme", "tenants")), "tenants", "view")
    assert not can_control(staff_member(Grant(None, "tenants")), "tenants", "change")


def test_tenant_admin_sees_only_their_tenant() -> None:
    ada = Principal("t", "tenant", 1, "ada@acme.example", tenant_slug="acme")
    assert can(ada, "acme", "users", "delete") and not can(ada, "globex", "users", "view")
    assert visible_slugs(ada, ["acme", "globex"]) == ["acme"]
    assert not any(can_control(ada, m, "view") for m in ("tenants", "runs", "staff", "history"))


@pytest.mark.parametrize(("slug", "model", "action"), [(None, "users", "view"), ("acme", "secrets", "view"),
                                                       ("acme", "users", "drop")])
def test_unknown_things_are_refused(slug: str | None, model: str, action: str) -> None:
    assert not can(staff_member(superuser=True), slug, model, action)
