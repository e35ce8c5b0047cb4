"""Every tenant's revision at a glance, from one bulk read plus the ledger's last results."""

from tenants.ledger import last_results
from tenants.plan import plan_migration
from tenants.runtime import Tenancy


def version_rows(tenancy: Tenancy) -> list[dict]:
    """Return one row per tenant: status, revision, head, pending count, last result and when."""
    tenancy.ensure_control()
    tenants = tenancy.registry.all()
    head = tenancy.head()
    plan = plan_migration(tenancy, tenants, head)
    last = last_results(tenancy.control_engine)
    rows = []
    for item in plan.items:
        result = last.get(item.slug) or {}
        rows.append({
            "slug": item.slug, "status": item.tenant.status, "revision": item.current, "head": head,
            "pending": len(item.steps), "error": item.error,
            "last_result": result.get("status"), "last_at": result.get("started_at"),
            "last_error": result.get("error"), "last_run": result.get("run_id"),
        })
    return rows
