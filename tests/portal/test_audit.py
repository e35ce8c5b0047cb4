"""History entries: what changed, old and new values, and never a password."""

import json
from decimal import Decimal

from sqlalchemy import select

from portal.audit import pending_changes, record, snapshot
from portal.models import Product, User
from portal.permissions import Principal
from tenants.core.control_schema import audit_log
from tests.console_support import Console


def test_pending_changes_list_old_and_new_values(console: Console) -> None:
    with console.session(console.a) as s:
        product = s.get(Product, 1)
        product.price = Decimal("11.50")
        product.name = "Anvil"  # unchanged value: not a change
        assert pending_changes(product) == {"price": ["10.00", "11.50"]}


def test_passwords_are_never_in_snapshots_or_changes(console: Console) -> None:
    with console.session(console.a) as s:
        user = s.scalars(select(User).where(User.email == f"ada@{console.a}.example")).one()
        assert "password_hash" not in snapshot(user)
        user.set_password("brand new secret")
        changes = pending_changes(user)
        assert changes == {"password": ["(changed)", "(changed)"]}
        assert "brand new secret" not in json.dumps(changes) and user.password_hash not in json.dumps(changes)


def test_record_names_who_where_and_what(console: Console) -> None:
    staff = Principal("t", "staff", 1, "root@example.com", is_superuser=True)
    admin = Principal("t", "tenant", 7, "ada@acme.example", tenant_slug="acme")
    engine = console.tenancy.control_engine
    record(engine, staff, "acme", "products", 1, "Anvil (ACM-1)", "change", {"price": ["1", "2"]})
    record(engine, admin, "acme", "users", 2, "bob@acme.example", "delete", None)
    with engine.connect() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id)).all()
    assert (rows[0].actor, rows[0].staff_id, rows[0].object_id, json.loads(rows[0].changes)) == (
        "root@example.com", 1, "1", {"price": ["1", "2"]})
    assert (rows[1].actor, rows[1].staff_id, rows[1].changes) == ("ada@acme.example (acme admin)", None, None)
