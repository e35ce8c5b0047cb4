"""The console's front page: one page of tenants with their recorded counts, and tenants that need attention.

Counts come from the control plane's tenant_stats (`manage.py for-each-tenant stats` refreshes
them), never from live queries of every tenant: a page costs a few bounded control-plane
queries whether there are 3 tenants or thousands.
"""

from math import ceil
from typing import Any, NamedTuple

from flask import current_app, redirect, request
from flask_admin import AdminIndexView, expose
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import Connection, func, or_, select, true

from portal.admin.base import SecureView
from portal.admin.control_views import FAILED_RESULTS
from portal.admin.formatting import human_time
from portal.admin.row_urls import cached_row_url
from portal.auth import login_url_for_here
from portal.permissions import TENANT_MODELS, can, can_control
from portal.quarantine import chain_head
from portal.tenant_scope import scoped
from tenants.core.control_schema import migration_runs, tenant_results, tenant_stats, tenant_versions, tenants
from tenants.core.ledger import MIGRATION_KINDS
from tenants.core.tenancy import Tenancy


class DashboardRow(NamedTuple):
    """One tenant on the dashboard (attributes, not a dict: Jinja reads a dict key only after a failed getattr)."""

    slug: str
    display_name: str
    status: str
    link: str
    revision: str | None
    behind: bool
    cells: list[int | None] | None  # per model, in column order; None where no grant lets the viewer see it
    taken_at: str | None
    last: Any
    failed: bool


def row_markup(row: DashboardRow, models: tuple[str, ...]) -> str:
    """Return one tenant's table row: built in Python, as a Jinja row cost a template call per cell."""
    if row.cells is None:
        counts = '<td colspan="4" class="text-muted" data-no-stats>no stats yet</td>'
    else:
        counts = "".join(f'<td data-count="{model}">{count}</td>' if count is not None
                         else '<td class="text-muted">-</td>' for model, count in zip(models, row.cells, strict=True))
        counts += f"<td data-taken-at>{escape(row.taken_at)}</td>"
    badge = ' <span class="badge badge-warning">behind</span>' if row.behind else ""
    return (f'<tr data-tenant="{escape(row.slug)}"><td><a href="{escape(row.link)}">{escape(row.display_name)}</a> '
            f"({escape(row.slug)})</td><td>{escape(row.status)}</td>{counts}"
            f"<td>{escape(row.revision or '-')}{badge}</td>"
            f"<td>{escape(row.last.status if row.last else '-')}</td></tr>")


def rows_markup(rows: list[DashboardRow], models: tuple[str, ...]) -> Markup:
    """Return the page's table rows (models are the grant names, not user input)."""
    return Markup("\n".join(row_markup(row, models) for row in rows))


class BehindRow(NamedTuple):
    """A tenant behind head in "Needs attention" (revision None: no recorded revision)."""

    slug: str
    revision: str | None


PAGE_SIZE = 20  # as Flask-Admin's lists: a page costs the same at any fleet size
ATTENTION_SHOWN = 20  # tenants named in "Needs attention"; the rest are counted


def page_number(value: Any, pages: int) -> int:
    """Return the 1-based page asked for, clamped to 1..pages (text, negative or huge numbers included)."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        number = 1
    return min(max(number, 1), pages)


def _latest_migration_ids() -> Any:
    r, m = tenant_results.c, migration_runs.c
    return (select(func.max(r.id)).join(migration_runs, m.id == r.run_id)
            .where(m.kind.in_(MIGRATION_KINDS)).group_by(r.tenant_slug))


def last_migrations(conn: Connection, slugs: list[str]) -> dict[str, Any]:
    """Return the latest migration result of each of these tenants (a maintenance task never hides one)."""
    r = tenant_results.c
    latest = _latest_migration_ids().where(r.tenant_slug.in_(slugs))
    return {row.tenant_slug: row for row in conn.execute(select(r.tenant_slug, r.status, r.error)
                                                         .where(r.id.in_(latest)))}


def failed_migrations(conn: Connection, principal: Any) -> list[Any]:
    """Return visible tenants whose latest migration failed (one more than shown, to tell there are more).

    Read from failed results (ix_tenant_results_failed) that no later migration result follows,
    not from the latest result of every tenant over the whole run history.
    """
    r, m, t = tenant_results.c, migration_runs.c, tenants.c
    later, later_run = tenant_results.alias("later"), migration_runs.alias("later_run")
    superseded = (select(later.c.id).join(later_run, later_run.c.id == later.c.run_id)
                  .where(later.c.tenant_slug == r.tenant_slug, later.c.id > r.id,
                         later_run.c.kind.in_(MIGRATION_KINDS)).exists())
    query = (select(r.tenant_slug, r.status, r.error).join(migration_runs, m.id == r.run_id)
             .join(tenants, t.slug == r.tenant_slug)
             .where(r.status.in_(FAILED_RESULTS), m.kind.in_(MIGRATION_KINDS), ~superseded))
    return list(conn.execute(scoped(query, principal).order_by(r.tenant_slug).limit(ATTENTION_SHOWN + 1)))


def behind_head(conn: Connection, principal: Any, head: str | None, total: int, versioned: int) -> tuple[list, int]:
    """Return the first tenants behind head (by slug) and how many there are.

    Behind is a ledger row at another revision or at none (ranges of ix_tenant_versions_revision,
    so the cost follows the tenants behind, not the fleet), or no ledger row at all: those are
    `total - versioned`, counted with the page's total, and looked up only when there are any.
    """
    t, v = tenants.c, tenant_versions.c
    other = true() if head is None else or_(v.revision.is_(None), v.revision < head, v.revision > head)
    found = conn.execute(scoped(select(t.slug, v.revision, func.count().over().label("total"))
                                .select_from(tenant_versions.join(tenants, t.slug == v.tenant_slug))
                                .where(other), principal).order_by(t.slug).limit(ATTENTION_SHOWN)).all()
    rows = [(row.slug, row.revision) for row in found]
    unrecorded = total - versioned
    if unrecorded:
        missing = ~select(v.tenant_slug).where(v.tenant_slug == t.slug).exists()
        rows += [(slug, None) for slug in conn.execute(scoped(select(t.slug).where(missing), principal)
                                                       .order_by(t.slug).limit(ATTENTION_SHOWN)).scalars()]
    shown = [BehindRow(slug, revision) for slug, revision in sorted(rows)[:ATTENTION_SHOWN]]
    return shown, (found[0].total if found else 0) + unrecorded


def dashboard_page(tenancy: Tenancy, principal: Any, asked: Any) -> dict[str, Any]:
    """Return one page of visible tenants with their stats, and the tenants behind head or failed."""
    t, v, s = tenants.c, tenant_versions.c, tenant_stats.c
    head = chain_head(tenancy)
    joined = tenants.outerjoin(tenant_versions, v.tenant_slug == t.slug)
    with tenancy.control_engine.connect() as conn:
        # The page count and how many of them have a recorded revision, in one pass.
        total, versioned = conn.execute(scoped(select(func.count(), func.count(v.tenant_slug)).select_from(joined),
                                               principal)).one()
        pages = max(1, ceil(total / PAGE_SIZE))
        page = page_number(asked, pages)
        tenant_rows = conn.execute(scoped(select(t.slug, t.display_name, t.status, t.account_key, v.revision)
                                          .select_from(joined), principal)
                                   .order_by(t.slug).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
        counted = conn.execute(select(s.tenant_key, s.table_name, s.row_count, s.taken_at)
                               .where(s.tenant_key.in_([row.account_key for row in tenant_rows]))).all()
        last = last_migrations(conn, [row.slug for row in tenant_rows])
        behind, behind_total = behind_head(conn, principal, head, total, versioned)
        failed = failed_migrations(conn, principal)
    stats: dict[str, dict[str, Any]] = {}
    for row in counted:
        entry = stats.setdefault(row.tenant_key, {"counts": {}, "taken_at": row.taken_at})
        entry["counts"][row.table_name] = row.row_count
        entry["taken_at"] = min(entry["taken_at"], row.taken_at)
    tenant_link = cached_row_url("tenant_home.index", "tenant")  # built once for the page's rows
    rows = []
    for row in tenant_rows:
        found = stats.get(row.account_key)
        cells = None if found is None else [
            found["counts"].get(m) if can(principal, row.slug, m, "view") else None
            for m in TENANT_MODELS]
        result = last.get(row.slug)
        rows.append(DashboardRow(row.slug, row.display_name, row.status, tenant_link(row.slug), row.revision,
                                 row.revision != head, cells, human_time(found["taken_at"]) if found else None,
                                 result, bool(result and result.status in FAILED_RESULTS)))
    return {"rows": rows, "page": page, "pages": pages, "total": total, "head": head,
            "behind": behind, "behind_total": behind_total, "failed": failed[:ATTENTION_SHOWN],
            "more_failed": len(failed) > ATTENTION_SHOWN}


class DashboardView(SecureView, AdminIndexView):
    def is_accessible(self) -> bool:
        return current_user.is_authenticated

    @expose("/")
    def index(self) -> Any:
        if not current_user.is_authenticated:
            return redirect(login_url_for_here())
        tenancy = current_app.extensions["tenancy"]
        # The signed-in principal itself, not the proxy: it is asked about every row.
        page = dashboard_page(tenancy, current_user._get_current_object(), request.args.get("page", 1))
        return self.render("admin/dashboard.html", rows_html=rows_markup(page["rows"], TENANT_MODELS),
                           show_tenants_link=can_control(current_user, "tenants", "view"), **page)
