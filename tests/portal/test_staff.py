"""`manage.py createsuperuser` and `create-staff`: scripted use, refusals, grants."""

from sqlalchemy import select
from werkzeug.security import check_password_hash

from manage import operator_cli
from tenants.core.control_schema import staff, staff_grants
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control
from tests.conftest import run_manage

cli = operator_cli()  # the whole CLI, as `manage.py` builds it


def _staff_rows(settings) -> list:  # type: ignore[no-untyped-def]
    tenancy = Tenancy(settings)
    try:
        ensure_control(tenancy)
        with tenancy.control_engine.connect() as conn:
            return conn.execute(select(staff).order_by(staff.c.id)).all()
    finally:
        tenancy.close()


def test_createsuperuser_refuses_without_terminal_or_password(cli_env, settings) -> None:  # type: ignore[no-untyped-def]
    result = run_manage(["createsuperuser", "--email", "root@example.com"], cli_env)
    assert result.returncode == 2
    assert "PORTAL_SUPERUSER_PASSWORD" in result.stderr and "Traceback" not in result.stderr
    assert _staff_rows(settings) == []


def test_createsuperuser_for_scripts(runner, settings) -> None:  # type: ignore[no-untyped-def]
    env = {"PORTAL_SUPERUSER_PASSWORD": "a long password"}
    result = runner.invoke(cli, ["createsuperuser", "--email", "Root@Example.com"], env=env)
    assert result.exit_code == 0, result.output
    [row] = _staff_rows(settings)
    assert row.email == "root@example.com" and row.is_superuser and row.active
    assert check_password_hash(row.password_hash, "a long password")
    again = runner.invoke(cli, ["createsuperuser", "--email", "root@example.com"], env=env)
    assert again.exit_code == 2 and "already exists" in again.output


def test_createsuperuser_bad_input(runner, settings) -> None:  # type: ignore[no-untyped-def]
    cases = [(["--email", "not-an-email"], "a long password"), (["--email", "a@b.example"], "short"),
             ([], "a long password")]
    for args, password in cases:
        result = runner.invoke(cli, ["createsuperuser", *args], env={"PORTAL_SUPERUSER_PASSWORD": password})
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("Error: ")
    assert _staff_rows(settings) == []


def test_create_staff_with_grants(runner, settings) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(cli, ["create-staff", "support@example.com", "--grant", "acme:products:view,change",
                                 "--grant", "*:users:view", "--grant", "*:history:view"],
                           env={"PORTAL_STAFF_PASSWORD": "a long password"})
    assert result.exit_code == 0, result.output
    tenancy = Tenancy(settings)
    try:
        with tenancy.control_engine.connect() as conn:
            grants = {(g.tenant_slug, g.model, g.can_view, g.can_add, g.can_change, g.can_delete)
                      for g in conn.execute(select(staff_grants))}
    finally:
        tenancy.close()
    assert grants == {("acme", "products", True, False, True, False), (None, "users", True, False, False, False),
                      (None, "history", True, False, False, False)}


def test_create_staff_refuses_bad_grants_before_writing(runner, settings) -> None:  # type: ignore[no-untyped-def]
    for grant in ["acme:products", "acme:nope:view", "acme:products:fly", "Bad-Slug:users:view",
                  "acme:tenants:view"]:
        result = runner.invoke(cli, ["create-staff", "x@example.com", "--grant", grant],
                               env={"PORTAL_STAFF_PASSWORD": "a long password"})
        assert result.exit_code == 2, (grant, result.output)
    assert _staff_rows(settings) == []
