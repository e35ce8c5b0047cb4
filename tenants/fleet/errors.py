"""Errors of fleet runs: the lock, the Celery broker, and runs that are not where they are looked for."""

from tenants.core.errors import TenantError


class FleetLocked(TenantError):
    """Another run holds the fleet lock; nothing was changed."""


class BrokerUnreachable(TenantError):
    """The Celery broker cannot be reached; nothing was changed."""


class UnknownRun(TenantError):
    """No run with this id is recorded in the control plane."""


class RunNotHere(TenantError):
    """The run is not in this worker's control plane (yet): the task is retried later."""
