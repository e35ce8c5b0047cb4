"""What operators see about the fleet: each tenant's status and revision."""

from tenants.errors import TenantError
from tenants.ledger import last_results
from tenants.migrator import current_revision
from tenants.runtime import Tenancy


def tenant_overview(tenancy: Tenancy) -> list[dict]:
    """Return one row per tenant: slug, status, live revision, at head, last change, storage."""
    tenancy.ensure_control()
    head = tenancy.head()
    results = last_results(tenancy.control_engine)
    rows = []
    for tenant in tenancy.registry.all():
        storage = tenancy.storage(tenant)
        try:
            revision, error = current_revision(storage), None
        except TenantError as e:
            revision, error = None, str(e)
        last = results.get(tenant.slug)
        rows.append({
            "slug": tenant.slug, "name": tenant.display_name, "status": tenant.status,
            "revision": revision, "head": head, "at_head": revision == head, "error": error,
            "last_change": last["started_at"] if last else None,
            "last_result": last["status"] if last else None, "storage": storage.describe(),
        })
    return rows
