"""The tenant registry in the control plane."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from tenants.core.chunks import chunks
from tenants.core.clock import utcnow
from tenants.core.control_schema import TENANT_STATUSES, tenant_latest_results, tenant_versions, tenants
from tenants.core.engines import unreachable
from tenants.core.errors import TenantError, TenantExists, TenantNotFound
from tenants.core.names import validate_slug


@dataclass(frozen=True, slots=True)  # slots: a run holds one per tenant
class Tenant:
    """One registry row."""

    slug: str
    display_name: str
    status: str
    status_reason: str | None
    database_url: str | None
    created_at: datetime


class TenantRegistry:
    """Read and change the registry rows; knows nothing of storage."""

    def __init__(self, control_engine: Engine) -> None:
        self.engine = control_engine

    def _rows(self, query) -> list[Tenant]:  # type: ignore[no-untyped-def]
        # The values most rows repeat (status, server URL) are kept once, not once per row (about
        # 140 of 400 bytes a row, by tracemalloc).
        shared: dict[str, str] = {}

        def once(value: str | None) -> str | None:
            return None if value is None else shared.setdefault(value, value)

        try:
            with self.engine.connect() as conn:
                return [Tenant(row.slug, row.display_name, once(row.status), row.status_reason, once(row.database_url),
                               row.created_at) for row in conn.execute(query)]
        except OperationalError as e:
            raise unreachable(str(self.engine.url), e) from e

    def _columns(self):  # type: ignore[no-untyped-def]
        t = tenants.c
        return select(t.slug, t.display_name, t.status, t.status_reason, t.database_url, t.created_at)

    def all(self) -> list[Tenant]:
        """Return every tenant, ordered by slug."""
        return self._rows(self._columns().order_by(tenants.c.slug))

    def pages(self, size: int) -> Iterator[list[Tenant]]:
        """Yield every tenant in slug order, `size` at a time: a fleet run holds one page, not the registry.

        Keyset pages (slug > the last one read): each is one indexed read however deep into the fleet.
        """
        after: str | None = None
        while True:
            query = self._columns().order_by(tenants.c.slug).limit(size)
            page = self._rows(query if after is None else query.where(tenants.c.slug > after))
            if page:
                yield page
            if len(page) < size:
                return
            after = page[-1].slug

    def find(self, slug: str) -> Tenant | None:
        """Return the tenant or None."""
        rows = self._rows(self._columns().where(tenants.c.slug == slug))
        return rows[0] if rows else None

    def find_many(self, slugs: list[str]) -> dict[str, Tenant]:
        """Return the tenants of `slugs` that exist, by slug (a bulk file may name thousands)."""
        found = [tenant for chunk in chunks(slugs)
                 for tenant in self._rows(self._columns().where(tenants.c.slug.in_(chunk)))]
        return {tenant.slug: tenant for tenant in found}

    def get(self, slug: str) -> Tenant:
        """Return the tenant or raise TenantNotFound."""
        tenant = self.find(slug)
        if tenant is None:
            raise TenantNotFound(f"unknown tenant {slug!r}: see 'manage.py list-tenants'")
        return tenant

    def add(self, slug: str, display_name: str, database_url: str | None,
            creator: tuple[str, int] | None = None) -> Tenant:
        """Register a tenant as `provisioning` by `creator` (host, pid); raise TenantExists for a taken slug."""
        validate_slug(slug)
        now = utcnow()
        reason = f"being created by pid {creator[1]} on {creator[0]}" if creator else None
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(tenants).values(
                    slug=slug, display_name=display_name, status="provisioning", status_reason=reason,
                    database_url=database_url, created_at=now, updated_at=now,
                ))
        except IntegrityError as e:
            raise TenantExists(f"tenant {slug!r} already exists") from e
        except OperationalError as e:
            raise unreachable(str(self.engine.url), e) from e
        return Tenant(slug, display_name, "provisioning", reason, database_url, now)

    def set_status(self, slug: str, status: str, reason: str | None = None, *,
                   created_at: datetime | None = None) -> None:
        """Move a tenant to another status, with an optional reason.

        With `created_at`, only the row created then: a tenant dropped and created again since it
        was read is another tenant, and TenantNotFound says so.
        """
        if status not in TENANT_STATUSES:
            raise TenantError(f"unknown tenant status {status!r}: use one of {', '.join(TENANT_STATUSES)}")
        row = tenants.c.slug == slug
        if created_at is not None:
            row &= tenants.c.created_at == created_at
        with self.engine.begin() as conn:
            done = conn.execute(update(tenants).where(row).values(status=status, status_reason=reason,
                                                                  updated_at=utcnow()))
            if done.rowcount == 0 and created_at is not None:
                raise TenantNotFound(f"tenant {slug!r} was dropped, and perhaps created again, meanwhile")
            if done.rowcount == 0:
                raise TenantNotFound(f"unknown tenant {slug!r}: see 'manage.py list-tenants'")

    def remove(self, slug: str) -> None:
        """Delete the registry row and its ledger entry (history rows stay)."""
        with self.engine.begin() as conn:
            conn.execute(delete(tenant_versions).where(tenant_versions.c.tenant_slug == slug))
            key = select(tenants.c.account_key).where(tenants.c.slug == slug).scalar_subquery()
            conn.execute(delete(tenant_latest_results).where(tenant_latest_results.c.tenant_key == key))
            conn.execute(delete(tenants).where(tenants.c.slug == slug))
