"""Create tenants through the guarded path: one (`create-tenant`), or many through the fleet runner.

The guard on creation: the creation gate when the template at head is built (a hazard that makes
a revision fail on the tenant's dialect refuses; data-loss hazards cannot cost an empty tenant a
row), the tenant's lock while it is brought to head, and a run row with a ledger record per
tenant. Many tenants go through the fleet's runner: the same pool, per-tenant all-or-nothing, the
report and the exit codes of upgrade-all-tenants. A tenant's own lock keeps two creations of it
apart, so creation never waits for the fleet lock.
"""

import csv
from dataclasses import replace

from sqlalchemy.engine import make_url

from tenants.core.clock import utcnow
from tenants.core.errors import InvalidTenantName, InvalidUsage
from tenants.core.registry import Tenant
from tenants.core.tenancy import Tenancy
from tenants.fleet.options import RunOptions
from tenants.fleet.report import RunReport
from tenants.fleet.runner import Event, FleetRun
from tenants.migrate.control import ensure_control
from tenants.migrate.lifecycle import TenantSpec, ours_to_finish, provision_tenant
from tenants.migrate.plan import Plan, TenantPlan
from tenants.migrate.templates import Template, head_template
from tenants.safety.gate import creation_gate

KIND = "create-tenant"


def creation_template(tenancy: Tenancy, dialect: str) -> Template | None:
    """Return the template at head for `dialect`; the creation gate runs when it has to be built."""
    return head_template(tenancy, dialect, lambda name: creation_gate(tenancy.scripts, name))


def create_tenant(tenancy: Tenancy, slug: str, display_name: str | None = None, database_url: str | None = None,
                  started_by: str | None = None) -> Tenant:
    """Create one tenant at head, guarded, as a run of its own; raise its error, leaving nothing behind."""
    spec = TenantSpec(slug, display_name, database_url)
    spec.check()
    ensure_control(tenancy)
    template = creation_template(tenancy, spec.storage(tenancy).dialect)
    tenant, _ = provision_tenant(tenancy, spec, template, started_by=started_by)
    return tenant


def read_tenant_file(text: str, source: str = "the file") -> list[TenantSpec]:
    """Parse `slug[,display name[,database URL]]` lines (CSV quoting; blank lines and # comments allowed).

    A malformed line or a slug given twice refuses the whole file (InvalidUsage naming the line).
    """
    specs: list[TenantSpec] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in next(csv.reader([line], skipinitialspace=True))]
        where = f"{source} line {number}"
        if len(fields) > 3:
            raise InvalidUsage(f"{where}: expected 'slug[,name[,database URL]]', got {len(fields)} fields; "
                               "nothing was created")
        slug, name, url = (fields + [None, None])[:3]
        spec = TenantSpec(slug, name or None, url or None)
        try:
            spec.check()
        except (InvalidTenantName, InvalidUsage) as e:
            raise InvalidUsage(f"{where}: {e}; nothing was created") from e
        if slug in seen:
            raise InvalidUsage(f"{where}: tenant {slug!r} is already on line {seen[slug]}; nothing was created")
        seen[slug] = number
        specs.append(spec)
    if not specs:
        raise InvalidUsage(f"{source} names no tenant; nothing was created")
    return specs


def _dialect(tenancy: Tenancy, database_url: str | None) -> str:
    return make_url(database_url or tenancy.settings.control_url).get_backend_name()


def create_tenants(tenancy: Tenancy, specs: list[TenantSpec], options: RunOptions | None = None,
                   on_event: Event | None = None) -> RunReport:
    """Create many tenants through the fleet runner; one tenant's failure leaves nothing of it and stops no other."""
    options = replace(options or RunOptions(), fleet_lock=False)
    options.validate()
    if options.via == "celery" or options.dry_run or options.rehearse or options.rehearse_first:
        raise InvalidUsage("tenants are created on this machine: not with --via celery, --dry-run or a rehearsal")
    slugs = [spec.slug for spec in specs]
    if len(set(slugs)) != len(slugs):
        raise InvalidUsage("a tenant is named twice; nothing was created")
    for spec in specs:
        spec.check()
    ensure_control(tenancy)
    now = utcnow()
    by_slug = {spec.slug: spec for spec in specs}
    items = [TenantPlan(Tenant(spec.slug, spec.display_name or spec.slug, "provisioning", None, spec.database_url,
                               now), "pending", None, ["head"]) for spec in specs]
    plan = Plan(KIND, "head", tenancy.head(), items)
    # A slug taken already (but by a failed or abandoned attempt) can only fail with TenantExists: a creation
    # read back from the registry (fleet.units) must not take that row for its own.
    taken = {slug for slug, tenant in tenancy.registry.find_many(slugs).items() if not ours_to_finish(tenant)}
    templates: dict[str, Template | None] = {}

    def build_templates(tenancy: Tenancy, plan: Plan, options: object) -> list[str]:
        """Plan check: the template of each dialect the new tenants use, built (and gated) before any is created."""
        for url in plan.pending_urls():
            dialect = _dialect(tenancy, url)
            if dialect not in templates:
                templates[dialect] = creation_template(tenancy, dialect)
        return []

    def params(item: TenantPlan) -> dict:
        spec = by_slug[item.slug]
        return {"name": spec.display_name, "database_url": spec.database_url,
                "template": templates[_dialect(tenancy, spec.database_url)],
                "lock_timeout": options.lock_timeout, "statement_timeout": options.statement_timeout,
                "taken_before": item.slug in taken}

    return FleetRun(tenancy, plan, "create", params, options, on_event, (build_templates,)).execute()
