"""The Celery task of one tenant of a dispatched run (the scheduled dispatch is in tenants.fleet.celery.beat).

`run_tenant(run_id, slug)` runs the very `run_unit` of the in-process runner on one tenant
(tenants.fleet.celery.relay.run_step), then sends the task of its slot's next tenant. It is acknowledged
late and rejected (re-queued) if its worker process dies, so a killed worker's tenant runs
again elsewhere; a tenant with a result is never redone. A migration killed between its commit
and its result runs again and finds the tenant at its target; a maintenance task begun by a dead
worker is recorded instead of run twice (tenants.fleet.celery.relay).
"""

from typing import Any

from celery.signals import worker_process_init
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import OperationalError as DatabaseError

from tenants.core.settings import TenantSettings
from tenants.core.tenancy import Tenancy
from tenants.fleet.celery.app import app
from tenants.fleet.celery.relay import mark_sent, run_step
from tenants.fleet.errors import RunNotHere
from tenants.fleet.run_status import finalise_if_complete
from tenants.fleet.units import init_worker, process_tenancy


def worker_tenancy() -> Tenancy:
    """Return this worker process's Tenancy, from DATABASE_URL and PORTAL_* like every command."""
    return process_tenancy(TenantSettings.from_env())


@worker_process_init.connect
def _load_chain(**_: Any) -> None:
    # Each pool process loads the revision chain once, before its first tenant.
    init_worker(TenantSettings.from_env())


@app.task(name="tenant_portal.run_tenant", bind=True, acks_late=True, reject_on_worker_lost=True,
          ignore_result=True, autoretry_for=(RunNotHere, DatabaseError, BrokerError),
          retry_backoff=2, retry_backoff_max=60, max_retries=30)
def run_tenant(self: Any, run_id: str, slug: str) -> str:
    """Run one tenant of a dispatched run, record its result, and relay to the slot's next tenant."""
    tenancy = worker_tenancy()
    step = run_step(tenancy, run_id, slug)
    if step.next_slug is not None:
        send_tenant(run_id, step.next_slug)
        mark_sent(tenancy.control_engine, run_id, step.next_slug)
    if step.slot_done:
        finalise_if_complete(tenancy.control_engine, run_id)
    return step.outcome


def send_tenant(run_id: str, slug: str) -> None:
    """Send the task of one tenant of a dispatched run to the broker."""
    run_tenant.apply_async((run_id, slug), retry=True, retry_policy={"max_retries": 3, "interval_start": 0.5})
