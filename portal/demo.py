"""`manage.py demo`: a few tenants with realistic users, roles and products (idempotent)."""

import secrets
from decimal import Decimal

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from portal.models import Product, Role, User
from portal.staff import upsert_staff
from tenants.cli.exit_codes import reports_errors
from tenants.core.binding import tenant_session
from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.migrate.control import ensure_control

DEMO_TENANTS = {
    "acme": ("Acme Corporation", ["Anvil", "Rocket Skates", "Giant Magnet", "Bird Seed"]),
    "globex": ("Globex", ["Doomsday Device", "Hammock", "Sprocket"]),
    "initech": ("Initech", ["TPS Cover Sheet", "Red Stapler", "Printer Toner"]),
}
DEMO_STAFF_EMAIL = "admin@example.com"


def seed_tenant(tenancy: Tenancy, slug: str, product_names: list[str]) -> None:
    """Fill an empty tenant with roles, users and products; leave a filled one alone."""
    with tenant_session(tenancy.storage(slug)) as session:
        if session.scalar(select(func.count()).select_from(User)):
            return
        admin = Role(name="admin", description="Tenant administrators", console_access=True)
        staff_role = Role(name="staff", description="Everyday users")
        session.add_all([admin, staff_role])
        for i, name in enumerate(["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra"]):
            user = User(email=f"{name.split()[0].lower()}@{slug}.example", full_name=name,
                        roles=[admin] if i == 0 else [staff_role])
            user.set_password(secrets.token_urlsafe(12))
            session.add(user)
        for i, name in enumerate(product_names):
            session.add(Product(name=name, sku=f"{slug[:3].upper()}-{i + 1:04d}",
                                price=Decimal("9.99") * (i + 1), stock=10 * i))
        session.commit()


def load_demo(tenancy: Tenancy) -> str:
    """Create the demo tenants and staff login; return the staff password (new each time)."""
    ensure_control(tenancy)
    for slug, (name, products) in DEMO_TENANTS.items():
        if tenancy.registry.find(slug) is None:
            create_tenant(tenancy, slug, name, started_by="demo")
        seed_tenant(tenancy, slug, products)
    password = secrets.token_urlsafe(12)
    upsert_staff(tenancy.control_engine, DEMO_STAFF_EMAIL, password, full_name="Demo Admin", superuser=True)
    return password


@click.command("demo")
@with_appcontext
@reports_errors
def demo_command() -> None:
    """Create demo tenants with users, roles and products, and print a staff login."""
    password = load_demo(current_app.extensions["tenancy"])
    click.echo(f"Demo tenants: {', '.join(DEMO_TENANTS)}")
    click.echo(f"Staff login: {DEMO_STAFF_EMAIL} / {password}")

