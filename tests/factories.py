"""Factories for tenant rows, written through a real tenant session."""

from decimal import Decimal

from portal.models import Product, Role, User
from tenants.core.binding import tenant_session
from tenants.core.storage import TenantStorage


def make_product(storage: TenantStorage, **overrides) -> int:
    """Insert a product in the tenant and return its id."""
    values = {"name": "Anvil", "sku": "SKU-1", "price": Decimal("9.99"), "stock": 3, **overrides}
    with tenant_session(storage) as session:
        product = Product(**values)
        session.add(product)
        session.commit()
        return product.id


def make_user(storage: TenantStorage, role: str | None = None, **overrides) -> int:
    """Insert a user (optionally with a new role) in the tenant and return its id."""
    values = {"email": "ada@example.com", "full_name": "Ada Lovelace", **overrides}
    with tenant_session(storage) as session:
        user = User(**values)
        user.set_password("correct horse battery staple")
        if role:
            user.roles.append(Role(name=role, description=""))
        session.add(user)
        session.commit()
        return user.id
