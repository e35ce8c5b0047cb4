"""Which revision is each tenant at: the fleet at a glance, from one bulk read plus the ledger."""

from tenants.core.errors import TenantError
from tenants.core.ledger import last_results
from tenants.core.registry import Tenant
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control
from tenants.migrate.plan import plan_migration
from tenants.migrate.versions import read_versions


def tenant_overview(tenancy: Tenancy) -> list[dict]:
    """Return one row per tenant: slug, status, live revision, at head, last change, storage."""
    ensure_control(tenancy)
    head = tenancy.head()
    results = last_results(tenancy.control_engine)
    tenants = tenancy.registry.all()
    reads = read_versions(tenancy, tenants)
    rows = []
    for tenant in tenants:
        read, last = reads[tenant.slug], results.get(tenant.slug)
        rows.append({
            # A tenant whose storage cannot be read is `unreachable`, with the reason; the rest are served.
            "slug": tenant.slug, "name": tenant.display_name, "status": "unreachable" if read.error else tenant.status,
            "revision": read.revision, "head": head, "at_head": read.error is None and read.revision == head,
            "error": read.error, "last_change": last["started_at"] if last else None,
            "last_result": last["status"] if last else None, "storage": _describe(tenancy, tenant),
        })
    return rows


def _describe(tenancy: Tenancy, tenant: Tenant) -> str:
    try:
        return tenancy.storage(tenant).describe()
    except TenantError as e:  # a row whose URL no engine takes (left by an older version): say why
        return str(e)


def version_rows(tenancy: Tenancy) -> list[dict]:
    """Return one row per tenant: status, revision, head, pending count, last result and when."""
    ensure_control(tenancy)
    tenants = tenancy.registry.all()
    head = tenancy.head()
    plan = plan_migration(tenancy, tenants, head)
    last = last_results(tenancy.control_engine)
    rows = []
    for item in plan.items:
        result = last.get(item.slug) or {}
        unreachable = item.status == "error" and item.error_status == "unreachable"
        rows.append({
            "slug": item.slug, "status": "unreachable" if unreachable else item.tenant.status,
            "revision": item.current, "head": head,
            "pending": len(item.steps), "error": item.error,
            "last_result": result.get("status"), "last_at": result.get("started_at"),
            "last_error": result.get("error"), "last_run": result.get("run_id"),
        })
    return rows
