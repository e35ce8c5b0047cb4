"""The handle every tenancy operation takes: settings, engines and the loaded revision chains."""

from functools import cached_property

from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from tenants.control_plane import upgrade_control
from tenants.engines import Engines
from tenants.registry import Tenant, TenantRegistry
from tenants.settings import TenantSettings
from tenants.storage import TenantStorage, storage_for


class Tenancy:
    """Settings plus the long-lived things built from them (engines, script directories)."""

    def __init__(self, settings: TenantSettings) -> None:
        self.settings = settings
        self.engines = Engines()
        self._control_ready = False

    @property
    def control_engine(self) -> Engine:
        return self.engines.get(self.settings.control_url)

    @cached_property
    def scripts(self) -> ScriptDirectory:
        """The tenant revision chain, loaded once per process."""
        return ScriptDirectory(str(self.settings.revision_dir))

    @cached_property
    def control_scripts(self) -> ScriptDirectory:
        return ScriptDirectory(str(self.settings.control_revision_dir))

    @property
    def registry(self) -> TenantRegistry:
        return TenantRegistry(self.control_engine)

    def ensure_control(self) -> tuple[str | None, str | None]:
        """Upgrade the control plane to head (once per process); return (from, to)."""
        result = upgrade_control(self.control_engine, self.control_scripts)
        self._control_ready = True
        return result

    def storage(self, tenant: Tenant | str) -> TenantStorage:
        """Return the storage of a registered tenant (or of a slug's default location)."""
        if isinstance(tenant, str):
            tenant = self.registry.get(tenant)
        return storage_for(tenant.slug, tenant.database_url, self.settings.control_url,
                           self.settings.tenant_dir, self.engines)

    def head(self) -> str | None:
        """Return the head revision of the tenant chain."""
        return self.scripts.get_current_head()

    def close(self) -> None:
        """Dispose of every engine."""
        self.engines.dispose()
