"""Errors of migration safety: the gate's refusal and backups that cannot be taken or used."""

from tenants.core.errors import InvalidUsage, TenantError
from tenants.safety.lint.hazards import Hazard, format_hazard


class GateBlocked(TenantError):
    """The lint found hazards this run may not go past; no tenant was touched."""

    def __init__(self, blocking: list[Hazard]) -> None:
        self.hazards = blocking
        listed = "\n".join("  " + format_hazard(h) for h in blocking)
        super().__init__(f"{len(blocking)} blocking migration hazard(s), no tenant was touched:\n{listed}\n"
                         "Acknowledge them in the revision file, or pass --allow-destructive (data loss) "
                         "/ drop --strict (other hazards) after review.")


class BackupFailed(TenantError):
    """A tenant could not be backed up; its upgrade must not run."""

    def __init__(self, slug: str, message: str) -> None:
        self.slug = slug
        self.reason = message
        super().__init__(f"backup of tenant {slug!r} failed: {message}")


class BackupNotFound(TenantError):
    """No such backup is recorded, its files are gone, or it does not fit the tenant."""


class InvalidBackupSetting(TenantError):
    """A backup setting from the environment is not usable."""


class AdoptionRefused(InvalidUsage):
    """An existing schema or file matches no revision of the chain (or not the one it says): nothing registered."""
