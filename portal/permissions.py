"""Who may do what in the console: Django-style grants per tenant, model and action.

Superusers may do everything. Staff members hold grants: per tenant (or every tenant when
the grant's tenant is NULL), per model, with view / add / change / delete. A tenant
administrator may do everything to the tenant models of their own tenant and nothing else.
"""

from dataclasses import dataclass, field

from flask_login import UserMixin

TENANT_MODELS = ("users", "roles", "products")
CONTROL_MODELS = ("tenants", "runs", "staff", "history")
ACTIONS = ("view", "add", "change", "delete")


@dataclass(frozen=True)
class Grant:
    """One row of staff_grants."""

    tenant_slug: str | None
    model: str
    can_view: bool = True
    can_add: bool = False
    can_change: bool = False
    can_delete: bool = False

    def allows(self, action: str) -> bool:
        """Return whether this grant allows `action`; any right on a model implies viewing it."""
        if action == "view":
            return self.can_view or self.can_add or self.can_change or self.can_delete
        return bool(getattr(self, f"can_{action}"))

    def covers(self, slug: str | None) -> bool:
        """Return whether the grant applies to tenant `slug` (NULL covers every tenant)."""
        return self.tenant_slug is None or self.tenant_slug == slug


@dataclass
class Principal(UserMixin):
    """The signed-in person: a staff member or a tenant administrator."""

    token: str
    kind: str  # "staff" or "tenant"
    id: int
    email: str
    display_name: str = ""
    is_superuser: bool = False
    tenant_slug: str | None = None  # the tenant of a tenant administrator
    grants: tuple[Grant, ...] = field(default_factory=tuple)
    tenant_key: str | None = None  # the account key of a tenant administrator's tenant

    def get_id(self) -> str:
        # Flask-Login keeps this in the session and the remember cookie: the session token,
        # never the account id, so ending the server-side session ends every copy of it.
        return self.token

    @property
    def label(self) -> str:
        """Name the principal in the audit log."""
        return self.email if self.kind == "staff" else f"{self.email} ({self.tenant_slug} admin)"


def can(principal: Principal, slug: str | None, model: str, action: str) -> bool:
    """Return whether `principal` may do `action` on tenant model `model` of tenant `slug`."""
    if slug is None or model not in TENANT_MODELS or action not in ACTIONS:
        return False
    if principal.kind == "tenant":
        return principal.tenant_slug == slug
    if principal.is_superuser:
        return True
    return any(g.model == model and g.covers(slug) and g.allows(action) for g in principal.grants)


def may_enter(principal: Principal, slug: str) -> bool:
    """Return whether `principal` may see anything at all of tenant `slug`."""
    if principal.kind == "tenant":
        return principal.tenant_slug == slug
    if principal.is_superuser:
        return True
    return any(g.model in TENANT_MODELS and g.covers(slug) and g.allows("view") for g in principal.grants)


def can_control(principal: Principal, model: str, action: str) -> bool:
    """Return whether `principal` may do `action` on control-plane model `model`."""
    if principal.kind != "staff" or model not in CONTROL_MODELS or action not in ACTIONS:
        return False
    if principal.is_superuser:
        return True
    return any(g.model == model and g.tenant_slug is None and g.allows(action) for g in principal.grants)


def visible_slugs(principal: Principal, slugs: list[str]) -> list[str]:
    """Return the slugs, in order, of the tenants `principal` may enter."""
    return [slug for slug in slugs if may_enter(principal, slug)]


def grants_all_tenants(principal: Principal) -> bool:
    """Return whether `principal` sees every tenant (so queries need no tenant filter)."""
    if principal.kind == "tenant":
        return False
    return principal.is_superuser or any(g.tenant_slug is None and g.model in TENANT_MODELS
                                         for g in principal.grants)
