"""The handle every tenancy operation takes: settings, engines and the loaded revision chains."""

from functools import cached_property

from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from tenants.core.backends import storage_for
from tenants.core.engines import Engines
from tenants.core.errors import MultipleHeads
from tenants.core.registry import Tenant, TenantRegistry
from tenants.core.settings import TenantSettings
from tenants.core.storage import TenantStorage


class Tenancy:
    """Settings plus the long-lived things built from them (engines, script directories)."""

    def __init__(self, settings: TenantSettings) -> None:
        self.settings = settings
        self.engines = Engines()
        #: (from, to) of the control plane once tenants.migrate.control.ensure_control has run.
        self.control_revisions: tuple[str | None, str | None] | None = None

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

    def storage(self, tenant: Tenant | str) -> TenantStorage:
        """Return the storage of a registered tenant (or of a slug's default location)."""
        if isinstance(tenant, str):
            tenant = self.registry.get(tenant)
        return storage_for(tenant.slug, tenant.database_url, self.settings.control_url,
                           self.settings.tenant_dir, self.engines)

    def heads(self) -> tuple[str, ...]:
        """Return the head revisions of the tenant chain (more than one until branches are merged)."""
        return tuple(sorted(self.scripts.get_heads()))

    def head(self) -> str | None:
        """Return the head revision of the tenant chain (None if empty); raise MultipleHeads if unmerged."""
        heads = self.heads()
        if len(heads) > 1:
            raise MultipleHeads(heads)
        return heads[0] if heads else None

    def close(self) -> None:
        """Dispose of every engine."""
        self.engines.dispose()
