"""Which tenants a run covers: read from the registry a page at a time, with the ones left out and why."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tenants.core.errors import TenantNotFound
from tenants.core.ledger import last_results
from tenants.core.registry import Tenant
from tenants.core.spool import Spool
from tenants.core.tenancy import Tenancy
from tenants.migrate.versions import fleet_pages

# Last results that `--only-failed` picks up again: the tenant did not reach its target.
FAILED_STATUSES = frozenset({"failed", "timeout", "unreachable", "busy", "drifted"})


@dataclass(frozen=True)
class Selection:
    """Which tenants a run covers: all active ones unless named; minus skipped ones."""

    tenants: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    only_failed: bool = False


class Chosen:
    """The tenants a selection covers, read from the registry a page at a time as they are iterated.

    `skipped` fills as the pages are read: the tenants left out, and why.
    """

    def __init__(self, tenancy: Tenancy, selection: Selection, migrations: bool) -> None:
        self.tenancy, self.selection, self.migrations = tenancy, selection, migrations
        self.skipped: Spool[tuple[str, str]] = Spool()
        wanted = [*selection.tenants, *selection.skip]
        found = tenancy.registry.find_many(wanted) if wanted else {}
        unknown = [slug for slug in wanted if slug not in found]
        if unknown:
            raise TenantNotFound(f"unknown tenant {unknown[0]!r}: see 'manage.py list-tenants'")
        self.named = [found[slug] for slug in sorted(set(selection.tenants))]

    def __iter__(self) -> Iterator[list[Tenant]]:
        size = self.tenancy.settings.plan_page
        if self.named:
            pages: Iterable[list[Tenant]] = (self.named[i:i + size] for i in range(0, len(self.named), size))
        else:
            pages = fleet_pages(self.tenancy)
        for page in pages:
            chosen = self._choose(page)
            if chosen:
                yield chosen

    def _choose(self, page: list[Tenant]) -> list[Tenant]:
        named, skip = set(self.selection.tenants), set(self.selection.skip)
        chosen = []
        for tenant in page:
            if tenant.slug in skip:
                self.skipped.append((tenant.slug, "--skip-tenant"))
            elif tenant.status != "active" and tenant.slug not in named:
                self.skipped.append((tenant.slug, f"{tenant.status}: name it with --tenant to include it"))
            else:
                chosen.append(tenant)
        if self.selection.only_failed and chosen:
            results = last_results(self.tenancy.control_engine, migrations=self.migrations,
                                   slugs=[t.slug for t in chosen])
            failed = {slug for slug, row in results.items() if row["status"] in FAILED_STATUSES}
            self.skipped.extend((t.slug, "last result was not a failure") for t in chosen if t.slug not in failed)
            chosen = [t for t in chosen if t.slug in failed]
        return chosen


def select_tenants(tenancy: Tenancy, selection: Selection, *, migrations: bool = True) -> Chosen:
    """Return the selected tenants, page by page (unknown slugs raise TenantNotFound now).

    `--only-failed` looks at each tenant's last migration result (`migrations`), or at its
    last maintenance result for a maintenance task: one kind of run never hides the other's failure.
    """
    return Chosen(tenancy, selection, migrations)
