"""One error hierarchy for everything tenancy can refuse or fail at."""


class TenantError(Exception):
    """Base class: a tenancy operation could not be done."""

    #: The exit code an operator command uses for this error (see README, "Exit codes").
    exit_code = 1


class InvalidTenantName(TenantError):
    """A tenant slug does not pass the whitelist."""

    exit_code = 2


class TenantExists(TenantError):
    """A tenant with this slug, schema or file already exists."""

    exit_code = 2


class TenantNotFound(TenantError):
    """No tenant with this slug is registered."""

    exit_code = 2


class InvalidRevision(TenantError):
    """A revision id is not part of the tenant chain."""

    exit_code = 2


class StorageUnavailable(TenantError):
    """A tenant's or the control plane's database cannot be reached."""

    exit_code = 3


class TenantBusy(TenantError):
    """Another process holds the tenant's lock."""

    exit_code = 3


class MigrationFailed(TenantError):
    """A revision failed for a tenant; the tenant stayed at its previous revision."""

    def __init__(self, slug: str, revision: str | None, message: str) -> None:
        self.slug = slug
        self.revision = revision
        self.db_message = message
        where = f" at revision {revision}" if revision else ""
        super().__init__(f"tenant {slug!r}{where}: {message}")


class MigrationTimeout(MigrationFailed):
    """A revision waited too long for a lock or ran past the statement timeout."""


class InvalidUsage(TenantError):
    """A command's options contradict each other or the fleet; nothing was changed."""

    exit_code = 2


class FleetLocked(TenantError):
    """Another run holds the fleet lock; nothing was changed."""

    exit_code = 3
