"""The per-tenant units of work the fleet runs, by name, in any process.

`run_unit(settings, slug, database_url, unit, params)` takes only picklable arguments and
returns a picklable TenantResult; it never raises for a tenant's own failure. Each process
keeps one Tenancy per settings (engines and the loaded revision chain), so a worker loads
the revision scripts once and reuses its connection pools for every tenant it runs.
"""

import ctypes
import ctypes.util
import os
import signal
import time
from collections.abc import Callable

from tenants.core.backends import storage_for
from tenants.core.ledger import TenantResult
from tenants.core.settings import TenantSettings
from tenants.core.storage import TenantStorage
from tenants.core.tenancy import Tenancy
from tenants.fleet.tasks import UNIT_PREFIX, get_task, run_task
from tenants.migrate.lifecycle import create_unit, creation_read_back
from tenants.migrate.unit import failure, migrate_tenant_unit, migration_read_back

# A unit: (tenancy, storage, params) -> TenantResult.
Unit = Callable[[Tenancy, TenantStorage, dict], TenantResult]

_TENANCIES: dict[TenantSettings, Tenancy] = {}


def process_tenancy(settings: TenantSettings, tenancy: Tenancy | None = None) -> Tenancy:
    """Return this process's Tenancy for `settings` (adopting `tenancy` if given and none exists)."""
    if settings not in _TENANCIES:
        _TENANCIES[settings] = tenancy or Tenancy(settings)
    return _TENANCIES[settings]


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux), and exit now if it is gone already.

    A SIGKILLed runner cannot stop its pool: without this its workers live on under init, each
    holding its database connections and its tenant's transaction.
    """
    path = ctypes.util.find_library("c")
    if path:
        try:
            ctypes.CDLL(path, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl (not Linux): only the check below
            pass
    if os.getppid() != parent:
        os._exit(1)  # the runner died before the line above took effect


def init_worker(settings: TenantSettings, parent: int | None = None) -> None:
    """Pool initializer: die with the runner `parent`, ignore Ctrl-C (the parent drains the run), load the chain."""
    if parent is not None:
        die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    process_tenancy(settings).scripts.get_current_head()  # loads every revision module, once


def migrate_unit(tenancy: Tenancy, storage: TenantStorage, params: dict) -> TenantResult:
    """Back the tenant up first when the run's gate asked for it (params['backup']), then migrate it."""
    if params.get("backup"):
        from tenants.safety.backups.store import backup_tenant
        from tenants.safety.errors import BackupFailed

        started = time.perf_counter()
        try:
            backup_tenant(tenancy, storage.slug, params.get("run_id"))
        except BackupFailed as e:
            return TenantResult(storage.slug, "failed", params.get("from"), None,
                                (time.perf_counter() - started) * 1000,
                                f"{e}; its upgrade was skipped, the tenant is unchanged")
    return migrate_tenant_unit(tenancy, storage, params)


def unit_function(unit: str) -> Unit:
    """Return the function of unit `unit`: 'migrate', 'create', or 'task:NAME' for a maintenance task."""
    if unit == "migrate":
        return migrate_unit
    if unit == "create":
        return create_unit
    if unit.startswith(UNIT_PREFIX):
        task = get_task(unit[len(UNIT_PREFIX):])
        return lambda tenancy, storage, params: run_task(task, tenancy, storage, params)
    raise KeyError(f"unknown unit of work {unit!r}")


def run_unit(settings: TenantSettings, slug: str, database_url: str | None, unit: str, params: dict) -> TenantResult:
    """Run unit `unit` on one tenant and return its result; failures are results, not exceptions."""
    started = time.perf_counter()
    try:
        tenancy = process_tenancy(settings)
        storage = storage_for(slug, database_url, settings.control_url, settings.tenant_dir, tenancy.engines)
        return unit_function(unit)(tenancy, storage, params)
    except Exception as error:  # one tenant's failure of any kind is that tenant's result
        return failure(slug, error, started, params.get("from"))


def read_back_result(settings: TenantSettings, slug: str, database_url: str | None, unit: str, params: dict,
                     event: str) -> TenantResult:
    """The result of a unit that ended without one (`event`: its worker died, Ctrl-C), given run_unit's arguments.

    A migration's is read from the tenant, a creation's from the registry (either may have committed
    first). A rehearsal is always rolled back. A maintenance task leaves no mark to read: whether it
    committed is not known, and the result says so (a task that is not safe to repeat needs a look first).
    """
    if unit in ("migrate", "create") and not params.get("rehearse"):
        tenancy = process_tenancy(settings)
        try:
            storage = storage_for(slug, database_url, settings.control_url, settings.tenant_dir, tenancy.engines)
        except Exception as error:
            return failure(slug, error, time.perf_counter(), params.get("from"))
        if unit == "create":
            return creation_read_back(tenancy, storage, params, event)
        return migration_read_back(storage, params, event, settings.lock_timeout)
    if unit.startswith(UNIT_PREFIX):
        return TenantResult(slug, "failed", params.get("from"), None, 0.0,
                            f"tenant {slug!r}: {event} while its task ran or before it started; whether it "
                            "committed is not known: check the tenant before running a task that is not safe to repeat")
    return TenantResult(slug, "failed", params.get("from"), None, 0.0,
                        f"tenant {slug!r}: {event} while it was rehearsed or before; a rehearsal is always rolled back")
