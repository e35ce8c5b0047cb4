"""The one error hierarchy: TenantError and the errors of tenancy's core.

Each package keeps its own errors in its `errors.py`, all under TenantError; the CLI maps
them to exit codes in one table (tenants.cli.exit_codes).
"""


class TenantError(Exception):
    """Base class: a tenancy operation could not be done."""


class InvalidTenantName(TenantError):
    """A tenant slug does not pass the whitelist."""


class TenantExists(TenantError):
    """A tenant with this slug, schema or file already exists."""


class TenantNotFound(TenantError):
    """No tenant with this slug is registered."""


class InvalidUsage(TenantError):
    """A command's input or options contradict each other or the fleet; nothing was changed."""


class StorageUnavailable(TenantError):
    """A tenant's or the control plane's database cannot be reached."""


class TenantBusy(TenantError):
    """Another process holds the tenant's lock."""


class ForeignKeyViolation(TenantError):
    """Rows of a tenant reference rows that are not there (found before a migration's commit)."""


class MultipleHeads(TenantError):
    """The revision chain has several heads: nothing can move to 'head' until they are merged."""

    def __init__(self, heads: tuple[str, ...]) -> None:
        self.heads = heads
        super().__init__(f"the revision chain has {len(heads)} heads ({', '.join(heads)}): merge them with "
                         "'manage.py db merge heads -m \"merge heads\"', review and commit the merge revision, "
                         "then run again; nothing was changed")


class RegistryMissing(TenantError):
    """Tenants' schemas or files exist but the registry lists none: the control database is new or replaced."""


class SpoolFailed(TenantError):
    """A run's per-tenant records could not be kept in the temporary folder (full, or gone)."""
