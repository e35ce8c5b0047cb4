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
from sqlalchemy import Connection, func, or_, select

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
    """Return visible tenants whose latest migration failed (one more than shown, to tell there are more)."""
    r, t = tenant_results.c, tenants.c
    query = (select(r.tenant_slug, r.status, r.error).join(tenants, t.slug == r.tenant_slug)
             .where(r.id.in_(_latest_migration_ids()), r.status.in_(FAILED_RESULTS)))
    return list(conn.execute(scoped(query, principal).order_by(r.tenant_slug).limit(ATTENTION_SHOWN + 1)))


def dashboard_page(tenancy: Tenancy, principal: Any, asked: Any) -> dict[str, Any]:
    """Return one page of visible tenants with their stats, and the tenants behind head or failed."""
    t, v, s = tenants.c, tenant_versions.c, tenant_stats.c
    head = chain_head(tenancy)
    joined = tenants.outerjoin(tenant_versions, v.tenant_slug == t.slug)
    with tenancy.control_engine.connect() as conn:
        total = conn.execute(scoped(select(func.count()).select_from(tenants), principal)).scalar_one()
        pages = max(1, ceil(total / PAGE_SIZE))
        page = page_number(asked, pages)
        tenant_rows = conn.execute(scoped(select(t.slug, t.display_name, t.status, t.account_key, v.revision)
                                          .select_from(joined), principal)
                                   .order_by(t.slug).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
        counted = conn.execute(select(s.tenant_key, s.table_name, s.row_count, s.taken_at)
                               .where(s.tenant_key.in_([row.account_key for row in tenant_rows]))).all()
        last = last_migrations(conn, [row.slug for row in tenant_rows])
        # The first few tenants behind head, each row carrying how many there are in all (one scan).
        behind = conn.execute(scoped(select(t.slug, v.revision, func.count().over().label("total"))
                                     .select_from(joined).where(or_(v.revision.is_(None), v.revision != head)),
                                     principal).order_by(t.slug).limit(ATTENTION_SHOWN)).all()
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
            "behind": behind, "behind_total": behind[0].total if behind else 0, "failed": failed[:ATTENTION_SHOWN],
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
