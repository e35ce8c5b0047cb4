"""The scheduled dispatch for Celery beat: hand a whole fleet run to the workers and return at once."""

from tenants.fleet.celery.app import app
from tenants.fleet.celery.tasks import worker_tenancy
from tenants.fleet.options import RunOptions
from tenants.fleet.runs import for_each_tenant, upgrade_tenants
from tenants.migrate.selection import Selection


@app.task(name="tenant_portal.dispatch_fleet", acks_late=False)
def dispatch_fleet(task: str | None = None, target: str = "head", jobs_per_server: int | None = None,
                   max_duration: float | None = None, fail_fast: bool = False,
                   args: list[str] | None = None) -> dict:
    """Dispatch an upgrade (task=None) or a maintenance task over every active tenant; for Celery beat.

    The run is handed to the workers and this task returns at once with the run id and plan counts.
    """
    tenancy = worker_tenancy()
    options = RunOptions(via="celery", no_wait=True, jobs_per_server=jobs_per_server, max_duration=max_duration,
                         fail_fast=fail_fast, started_by="celery beat")
    if task is None:
        report = upgrade_tenants(tenancy, Selection(), target, options)
    else:
        report = for_each_tenant(tenancy, task, Selection(), {"args": list(args or [])}, options)
    summary = report.to_dict()
    return {key: summary[key] for key in ("run_id", "kind", "target", "status", "counts", "notes")}
