"""Fixtures for the console tests: two tenants, a few staff members, and signed-in clients.

Registered as a pytest plugin from conftest.py. Every fixture builds on the `app` fixture,
so each test gets its own control plane and tenants (PostgreSQL schemas or SQLite files).
"""

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert
from werkzeug.security import generate_password_hash

from portal.models import Product, Role, User
from portal.permissions import Grant
from tenants.core.binding import tenant_session
from tenants.core.clock import utcnow
from tenants.core.control_schema import staff, staff_grants
from tenants.fleet.create import create_tenant

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"')


@dataclass
class Console:
    """The world of a console test."""

    app: Flask
    a: str = "acme"
    b: str = "globex"

    @property
    def tenancy(self) -> Any:
        return self.app.extensions["tenancy"]

    def session(self, slug: str) -> Any:
        """Open an ORM session on one tenant (for arranging and checking data)."""
        return tenant_session(self.tenancy.storage(slug))

    def products(self, slug: str) -> dict[int, Product]:
        with self.session(slug) as s:
            return {p.id: p for p in s.query(Product).all()}

    def refresh_stats(self, *slugs: str) -> None:
        """Take the tenants' counts (these, or every one) for the dashboard, as `for-each-tenant stats` does."""
        from tenants.fleet.runs import for_each_tenant
        from tenants.migrate.selection import Selection

        report = for_each_tenant(self.tenancy, "stats", Selection(tenants=slugs))
        assert report.exit_code == 0, [r.error for r in report.results]

    def add_product(self, slug: str, name: str, sku: str, price: str = "1.00", stock: int = 1) -> int:
        with self.session(slug) as s:
            product = Product(name=name, sku=sku, price=Decimal(price), stock=stock)
            s.add(product)
            s.commit()
            return product.id


@lru_cache(maxsize=1)
def password_hash() -> str:
    """The hash of PASSWORD, made once and cheap to check: tests sign in a lot.

    The portal verifies it exactly as any stored hash (werkzeug reads the method from the
    hash); only the work factor is lower than the scrypt default new passwords get.
    """
    return generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


def add_staff(engine: Any, email: str, superuser: bool = False, grants: tuple[Grant, ...] = ()) -> int:
    """Insert a staff member with PASSWORD and the given grants."""
    with engine.begin() as conn:
        staff_id = conn.execute(insert(staff).values(
            email=email, full_name=email.split("@")[0].title(), password_hash=password_hash(), active=True,
            is_superuser=superuser, created_at=utcnow())).inserted_primary_key[0]
        for grant in grants:
            conn.execute(insert(staff_grants).values(staff_id=staff_id, **grant.__dict__))
    return staff_id


def register_tenants(engine: Any, slugs: list[str], status: str = "active", name: str = "{slug} Inc") -> None:
    """Add registry rows only (no storage), in one statement: pages that must not open tenants never notice."""
    from tenants.core.control_schema import new_account_key, tenants

    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(tenants), [
            {"slug": slug, "display_name": name.format(slug=slug), "status": status, "created_at": now,
             "updated_at": now, "account_key": new_account_key()} for slug in slugs])


def record_versions(engine: Any, slugs: list[str], revision: str | None) -> None:
    """Give these tenants a ledger row at `revision`, in one statement."""
    from tenants.core.control_schema import tenant_versions

    with engine.begin() as conn:
        conn.execute(insert(tenant_versions), [{"tenant_slug": slug, "revision": revision, "updated_at": utcnow()}
                                               for slug in slugs])


def csrf_token(client: FlaskClient, url: str = "/login") -> str:
    """Return a CSRF token of the client's session, read from a rendered page."""
    page = client.get(url)
    if page.status_code == 302 and url == "/login":  # already signed in: any console page carries one
        page = client.get("/admin/")
    found = CSRF_RE.search(page.get_data(as_text=True))
    assert found, f"no csrf token on {url} ({page.status_code})"
    return found.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD, tenant: str = "", remember: bool = False,
          next_url: str = "") -> Any:
    """Sign in through the real form (with its CSRF token); return the response."""
    data = {"email": email, "password": password, "tenant": tenant, "csrf_token": csrf_token(client),
            "next": next_url}
    if remember:
        data["remember"] = "y"
    return client.post("/login", data=data)


def seed(console: Console) -> None:
    """Two tenants with data; staff: root (superuser), alice (all on acme), viewer (acme products, view)."""
    tenancy = console.tenancy
    for slug in (console.a, console.b):
        create_tenant(tenancy, slug)
        with console.session(slug) as s:
            admin = Role(name="admin", description="Tenant administrators", console_access=True)
            plain = Role(name="staff", description="Everyday users")
            ada = User(email=f"ada@{slug}.example", full_name="Ada", roles=[admin], password_hash=password_hash())
            bob = User(email=f"bob@{slug}.example", full_name="Bob", roles=[plain], password_hash=password_hash())
            s.add_all([admin, plain, ada, bob])
            s.commit()
    console.add_product(console.a, "Anvil", "ACM-1", "10.00", 5)
    console.add_product(console.a, "Rocket Skates", "ACM-2", "20.00", 7)
    for i in range(1, 5):  # globex has more products, so some of its ids do not exist in acme
        console.add_product(console.b, f"Globex thing {i}", f"GLX-{i}", "3.00", i)
    engine = tenancy.control_engine
    add_staff(engine, "root@example.com", superuser=True)
    add_staff(engine, "alice@example.com", grants=tuple(
        Grant(console.a, m, True, True, True, True) for m in ("users", "roles", "products")))
    add_staff(engine, "viewer@example.com", grants=(Grant(console.a, "products"),))


@pytest.fixture
def console(app: Flask) -> Console:
    """The seeded console world over this test's backend.

    conftest's `settings` hands a test that uses this fixture its own copy of a world seeded once
    per session (a PostgreSQL template database, or copied SQLite files); seeded here otherwise.
    """
    world = Console(app)
    if world.tenancy.registry.find(world.a) is None:
        seed(world)
    return world


def signed_in(app: Flask, email: str, tenant: str = "") -> FlaskClient:
    """Return a new test client signed in as `email`."""
    client = app.test_client()
    response = login(client, email, tenant=tenant)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


@pytest.fixture
def root(console: Console) -> FlaskClient:
    return signed_in(console.app, "root@example.com")


@pytest.fixture
def alice(console: Console) -> FlaskClient:
    return signed_in(console.app, "alice@example.com")


@pytest.fixture
def viewer(console: Console) -> FlaskClient:
    return signed_in(console.app, "viewer@example.com")


@pytest.fixture
def acme_admin(console: Console) -> FlaskClient:
    return signed_in(console.app, f"ada@{console.a}.example", tenant=console.a)
