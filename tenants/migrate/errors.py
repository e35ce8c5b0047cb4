"""Errors of moving tenants along the chain."""

from tenants.core.errors import TenantError


class InvalidRevision(TenantError):
    """A revision id is not part of the tenant chain."""


class MigrationFailed(TenantError):
    """A revision failed for a tenant; the tenant stayed at its previous revision."""

    def __init__(self, slug: str, revision: str | None, message: str) -> None:
        self.slug = slug
        self.revision = revision
        self.db_message = message
        # A range ("a..b") is named when the revisions ran as one script and a timeout ended it.
        where = f" at revision{'s' if revision and '..' in revision else ''} {revision}" if revision else ""
        super().__init__(f"tenant {slug!r}{where}: {message}")


class MigrationTimeout(MigrationFailed):
    """A revision waited too long for a lock or ran past the statement timeout."""
