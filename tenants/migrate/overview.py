"""Which revision is each tenant at: the fleet at a glance, from bulk reads (a page at a time) plus the ledger.

Both views keep working while the chain has unmerged heads: `head` then names every head.
"""

from collections.abc import Iterator

from tenants.core.errors import TenantError
from tenants.core.ledger import last_results
from tenants.core.registry import Tenant
from tenants.core.tenancy import Tenancy
from tenants.migrate.control import ensure_control
from tenants.migrate.plan import plan_migration
from tenants.migrate.versions import fleet_pages, read_versions


def tenant_overview(tenancy: Tenancy) -> Iterator[dict]:
    """Yield one row per tenant: slug, status, live revision, at head, last change, storage (a page at a time)."""
    ensure_control(tenancy)
    heads = tenancy.heads()
    head = ", ".join(heads) or None
    for tenants in fleet_pages(tenancy):
        results = last_results(tenancy.control_engine, migrations=True, slugs=[t.slug for t in tenants])
        reads = read_versions(tenancy, tenants)
        for tenant in tenants:
            read, last = reads[tenant.slug], results.get(tenant.slug)
            status, error = _status(tenant, read.error, unreachable=read.error is not None)
            yield {
                "slug": tenant.slug, "name": tenant.display_name, "status": status,
                "revision": read.revision, "head": head, "at_head": read.error is None and read.revision in heads,
                "error": error, "last_change": last["started_at"] if last else None,
                "last_result": last["status"] if last else None, "storage": _describe(tenancy, tenant),
            }


def _status(tenant: Tenant, error: str | None, *, unreachable: bool) -> tuple[str, str | None]:
    """Return the (status, error) a view shows.

    A tenant whose storage cannot be read is `unreachable`, with the reason; the rest are served.
    A row being created or dropped, or left `failed`, keeps its own status and reason: its
    storage may well be missing, and the reason says what to run.
    """
    if tenant.status in ("provisioning", "failed"):
        return tenant.status, tenant.status_reason or error
    return ("unreachable" if unreachable else tenant.status), error


def _describe(tenancy: Tenancy, tenant: Tenant) -> str:
    try:
        return tenancy.storage(tenant).describe()
    except TenantError as e:  # a row whose URL no engine takes (left by an older version): say why
        return str(e)


def version_rows(tenancy: Tenancy) -> Iterator[dict]:
    """Yield one row per tenant: status, revision, head, pending count, last migration and last task results.

    A page of tenants at a time (settings.plan_page): the listing of a large fleet is never held whole.
    """
    ensure_control(tenancy)
    heads = tenancy.heads()
    for tenants in fleet_pages(tenancy):
        yield from _version_page(tenancy, tenants, heads)


def _version_page(tenancy: Tenancy, tenants: list[Tenant], heads: tuple[str, ...]) -> Iterator[dict]:
    if len(heads) == 1:
        plan = plan_migration(tenancy, [tenants], heads[0])
        found = {item.slug: (item.current, len(item.steps), item.error,
                             item.status == "error" and item.error_status == "unreachable") for item in plan.items}
    else:  # no single target to count pending revisions towards until the heads are merged
        reads = read_versions(tenancy, tenants)
        found = {t.slug: (reads[t.slug].revision, None, reads[t.slug].error, reads[t.slug].error is not None)
                 for t in tenants}
    slugs = [tenant.slug for tenant in tenants]
    last = last_results(tenancy.control_engine, migrations=True, slugs=slugs)
    tasks = last_results(tenancy.control_engine, migrations=False, slugs=slugs)
    for tenant in tenants:
        current, pending, error, unreachable = found[tenant.slug]
        status, error = _status(tenant, error, unreachable=unreachable)
        result, task = last.get(tenant.slug) or {}, tasks.get(tenant.slug) or {}
        yield {
            "slug": tenant.slug, "status": status, "revision": current,
            "head": ", ".join(heads) or None, "pending": pending, "error": error,
            "last_result": result.get("status"), "last_at": result.get("started_at"),
            "last_error": result.get("error"), "last_run": result.get("run_id"),
            "last_task": task.get("kind"), "last_task_result": task.get("status"),
            "last_task_at": task.get("started_at"),
        }
