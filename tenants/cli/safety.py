"""Operator commands for migration safety: lint, backups, restore, prune and drift.

Each body is one call into the library plus presentation; heavy modules load per command.
"""

import json
import sys

import click

from tenants.cli.context import get_tenancy
from tenants.cli.exit_codes import fail, reports_errors
from tenants.migrate.control import ensure_control


def _fleet_starts(tenancy) -> tuple[set[str | None], frozenset[str]]:  # type: ignore[no-untyped-def]
    """Return every tenant's live revision (the ledger's when unreadable) and the fleet's dialects."""
    from tenants.core.ledger import ledger_versions
    from tenants.migrate.versions import read_versions
    from tenants.safety.gate import dialects_of

    ensure_control(tenancy)
    ledger = ledger_versions(tenancy.control_engine)
    tenants = tenancy.registry.all()
    reads = read_versions(tenancy, tenants)
    starts = {ledger.get(t.slug) if reads[t.slug].error else reads[t.slug].revision for t in tenants}
    return starts, dialects_of(tenancy.storage(t).dialect for t in tenants)


@click.command("lint-migrations")
@click.argument("rev_range", required=False)
@click.option("--dialect", "dialects", type=click.Choice(["postgresql", "sqlite"]), multiple=True,
              help="Judge hazards for this backend (repeatable; default: every backend the fleet uses).")
@click.option("--allow-destructive", is_flag=True, help="Judge as upgrade-all-tenants --allow-destructive would.")
@click.option("--strict", is_flag=True, help="Judge as upgrade-all-tenants --strict would (every hazard blocks).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report for scripts.")
@reports_errors
def lint_migrations_command(rev_range: str | None, dialects: tuple[str, ...], allow_destructive: bool,
                            strict: bool, as_json: bool) -> None:
    """Report data-loss, broken-row, lock and non-transactional hazards in revisions.

    REV_RANGE is FROM:TO (e.g. 0002:head, :head from base) or FROM alone (up to head); by
    default the revisions pending for any tenant of the fleet. Exit 1 when a hazard would
    stop upgrade-all-tenants with the same flags, 0 otherwise, 2 on bad input.
    """
    from tenants.safety.gate import plan_gate
    from tenants.safety.lint.hazards import format_hazard

    tenancy = get_tenancy()
    if rev_range:
        start, _, end = rev_range.partition(":")
        starts, target = {start or None}, end or "head"
        fleet_dialects = frozenset({"postgresql" if tenancy.settings.control_url.startswith("postgresql")
                                    else "sqlite"})
    else:
        starts, fleet_dialects = _fleet_starts(tenancy)
        target = "head"
    judged = frozenset(dialects) or fleet_dialects
    report = plan_gate(tenancy.scripts, starts, target, judged, allow_destructive, strict)
    if as_json:
        click.echo(json.dumps({
            "range": rev_range, "from": sorted(s or "base" for s in starts), "to": target,
            "dialects": sorted(judged), "hazards": [h.to_dict() for h in report.hazards],
            "blocking": [h.key for h in report.blocking], "backup_revisions": sorted(report.destructive),
        }, indent=2))
    else:
        for hazard in report.hazards:
            mark = "BLOCKS" if hazard in report.blocking else ("ok" if hazard.acknowledged else "warn")
            click.echo(f"{mark:6} {format_hazard(hazard)}")
        acknowledged = sum(h.acknowledged for h in report.hazards)
        click.echo(f"{len(report.hazards)} hazard(s): {len(report.blocking)} blocking, {acknowledged} acknowledged")
    if report.blocking:
        sys.exit(1)


@click.command("backup-tenant")
@click.argument("slugs", nargs=-1, required=True)
@click.option("--method", type=click.Choice(["auto", "pg_dump", "copy"]), default="auto", show_default=True,
              help="PostgreSQL only: pg_dump, or the COPY export (auto: pg_dump when it fits the server).")
@reports_errors
def backup_tenant_command(slugs: tuple[str, ...], method: str) -> None:
    """Back up tenants now (files under <instance>/backups/manual/)."""
    from tenants.safety.backups.store import backup_tenant

    tenancy = get_tenancy()
    ensure_control(tenancy)
    for slug in slugs:
        tenancy.registry.get(slug)
    for slug in slugs:
        backup = backup_tenant(tenancy, slug, None, method=method)
        click.echo(f"backup {backup.id}: {slug} at {backup.revision or 'base'} -> {backup.path}")


@click.command("backups")
@click.argument("slug", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for scripts.")
@reports_errors
def backups_command(slug: str | None, as_json: bool) -> None:
    """List recorded backups, newest first (of one tenant with SLUG)."""
    from tenants.safety.backups.store import list_backups

    tenancy = get_tenancy()
    ensure_control(tenancy)
    rows = list_backups(tenancy, slug)
    if as_json:
        click.echo(json.dumps([b.to_dict() for b in rows], indent=2))
        return
    for b in rows:
        click.echo(f"{b.id:>5}  {b.tenant_slug:20} {b.revision or 'base':12} {b.method:8} "
                   f"{b.size_bytes or 0:>10}  {b.created_at:%Y-%m-%d %H:%M:%S}  {b.path}")
    if not rows:
        click.echo("no backups")


@click.command("restore-tenant")
@click.argument("slug")
@click.argument("backup")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@click.option("--no-backup", is_flag=True,
              help="Do not back up the tenant's current state first (for a tenant too broken to back up).")
@reports_errors
def restore_tenant_command(slug: str, backup: str, yes: bool, no_backup: bool) -> None:
    """Replace a tenant's schema and data with BACKUP (an id from 'backups', or its path).

    The current state is backed up first, so a restore can itself be undone.
    """
    from tenants.safety.backups.restore import restore_tenant
    from tenants.safety.backups.store import get_backup

    tenancy = get_tenancy()
    ensure_control(tenancy)
    tenancy.registry.get(slug)
    found = get_backup(tenancy, backup)
    if not yes:
        if not sys.stdin.isatty():
            fail(f"refusing to restore tenant {slug!r} without confirmation: pass --yes", 2)
        click.confirm(f"Replace ALL data of tenant {slug!r} with backup {found.id} "
                      f"({found.created_at:%Y-%m-%d %H:%M}, revision {found.revision})?", abort=True)
    restored = restore_tenant(tenancy, slug, found, keep_current=not no_backup)
    if restored.kept is not None:
        click.echo(f"{slug}: the state before the restore is backup {restored.kept.id} ({restored.kept.path})")
    outcome = restored.outcome
    click.echo(f"{slug}: restored backup {found.id}: {outcome.from_revision or 'base'} -> "
               f"{outcome.to_revision or 'base'} ({outcome.duration_ms:.0f} ms)")


@click.command("prune-backups")
@click.option("--keep-days", type=click.FloatRange(min=0),
              help="Keep backups this many days (default: PORTAL_BACKUP_KEEP_DAYS, else 30).")
@reports_errors
def prune_backups_command(keep_days: float | None) -> None:
    """Delete backups older than the retention period, files and records."""
    from tenants.safety.backups.store import keep_days_setting, prune_backups

    tenancy = get_tenancy()
    ensure_control(tenancy)
    removed = prune_backups(tenancy, keep_days if keep_days is not None else keep_days_setting())
    for b in removed:
        click.echo(f"removed backup {b.id} ({b.tenant_slug}, {b.created_at:%Y-%m-%d}) {b.path}")
    click.echo(f"{len(removed)} backup(s) removed")


@click.command("check-tenants")
@click.option("--tenant", "slugs", multiple=True, help="Check only this tenant (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report for scripts.")
@reports_errors
def check_tenants_command(slugs: tuple[str, ...], as_json: bool) -> None:
    """Compare each tenant's schema with its revision and its alembic_version with the ledger; exit 1 on drift."""
    from tenants.safety.drift import check_drift

    reports = check_drift(get_tenancy(), list(slugs) or None)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        for r in reports:
            state = "error" if r.error else ("drifted" if r.differences else "ok")
            click.echo(f"{r.slug}: {state} at {r.revision or 'base'}" + (f": {r.error}" if r.error else ""))
            for d in r.differences:
                where = ".".join(p for p in (d.table, d.name) if p)
                click.echo(f"  {d.kind} {where} {d.detail}".rstrip())
    if any(r.drifted for r in reports):
        sys.exit(1)


@click.command("verify-chain")
@click.option("--dialect", "dialects", type=click.Choice(["postgresql", "sqlite"]), multiple=True,
              help="Verify on this backend (repeatable; default: every backend the control plane and tenants use).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report for CI.")
@reports_errors
def verify_chain_command(dialects: tuple[str, ...], as_json: bool) -> None:
    """Walk the chain base -> head -> base -> head on a scratch tenant full of rows; exit 1 if a revision breaks it.

    After each step no table the step does not drop may lose a row, and each downgrade must
    restore the schema its upgrade started from. The scratch tenant is removed afterwards.
    """
    from tenants.migrate.control import ensure_control
    from tenants.safety.gate import dialects_of
    from tenants.safety.verify import verify_chain

    tenancy = get_tenancy()
    ensure_control(tenancy)
    if not dialects:
        control = "postgresql" if tenancy.settings.control_url.startswith("postgresql") else "sqlite"
        dialects = tuple(sorted(dialects_of([control, *(tenancy.storage(t).dialect for t in tenancy.registry.all())])))
    verdicts = verify_chain(tenancy, list(dialects))
    if as_json:
        click.echo(json.dumps([v.to_dict() for v in verdicts], indent=2))
    else:
        for v in verdicts:
            if v.broken is None:
                click.echo(f"{v.dialect}: ok, {v.steps} steps (base -> head -> base -> head), no row lost")
            else:
                b = v.broken
                click.echo(f"{v.dialect}: revision {b.revision} ({b.direction}) breaks the chain: {b.kind}: {b.detail}")
    if any(v.broken for v in verdicts):
        sys.exit(1)


COMMANDS = [lint_migrations_command, verify_chain_command, backup_tenant_command, backups_command,
            restore_tenant_command, prune_backups_command, check_tenants_command]

