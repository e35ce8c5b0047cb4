"""Operator commands for tenants; each body is one call into the library plus presentation.

They build their Tenancy from the environment (DATABASE_URL, PORTAL_*), so they run without
building the web app: a scheduled job pays only for what it uses.
"""

import sys

import click

from tenants.cli.context import get_tenancy
from tenants.cli.exit_codes import fail, reports_errors
from tenants.core.engines import mask_secrets
from tenants.migrate.control import ensure_control


@click.command("migrate-control")
@reports_errors
def migrate_control_command() -> None:
    """Upgrade the control-plane database to the head of its chain."""
    before, after = ensure_control(get_tenancy())
    click.echo(f"control plane: {before or 'empty'} -> {after}" if before != after else f"control plane at {after}")


@click.command("create-tenant")
@click.argument("slugs", nargs=-1, required=True, metavar="SLUG [SLUG ...]")
@click.option("--name", help="Display name (default: from the slug); one tenant only.")
@click.option("--database-url",
              help="The tenant's own PostgreSQL database (default: a schema or file by DATABASE_URL).")
@click.option("--jobs", type=int, help="Worker processes for several tenants (default as upgrade-all-tenants).")
@click.option("--adopt", is_flag=True,
              help="Register an EXISTING schema or SQLite file at the revision its schema matches; build nothing.")
@reports_errors
def create_tenant_command(slugs: tuple[str, ...], name: str | None, database_url: str | None,
                          jobs: int | None, adopt: bool) -> None:
    """Create tenants at the head revision, each all or nothing; several go through the fleet runner.

    `--adopt` registers one existing schema or file instead, at the revision its schema matches.
    Exit codes: 0 created; 1 some tenants failed (nothing of them is left); 2 bad usage or a
    revision that fails on the tenants' dialect (nothing created); 3 database unreachable.
    """
    from tenants.migrate.lifecycle import TenantSpec

    if adopt:
        if len(slugs) > 1:
            fail("--adopt registers one tenant: give one slug", 2)
        from tenants.safety.adopt import adopt_tenant

        tenancy = get_tenancy()
        adopted = adopt_tenant(tenancy, slugs[0], name, database_url)
        click.echo(f"adopted tenant {slugs[0]} ({tenancy.storage(adopted.tenant).describe()}) at {adopted.revision}"
                   + (" (stamped)" if adopted.stamped else ""))
        return
    if len(slugs) > 1:
        if name is not None:
            fail("--name names one tenant: for several, give names in a file to create-tenants --from", 2)
        _create_many([TenantSpec(slug, None, database_url) for slug in slugs], jobs, False, False)
    from tenants.fleet.create import create_tenant

    tenancy = get_tenancy()
    tenant = create_tenant(tenancy, slugs[0], name, database_url)
    click.echo(f"created tenant {tenant.slug} ({tenancy.storage(tenant).describe()}) at {tenancy.head()}")


@click.command("create-tenants")
@click.option("--from", "source", type=click.File("r"), required=True, metavar="FILE",
              help="One tenant per line: slug[,display name[,database URL]]; blank lines and # comments allowed.")
@click.option("--jobs", type=int, help="Worker processes (default as upgrade-all-tenants).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report (for scripts).")
@click.option("--quiet", is_flag=True, help="Print only failures and the summary.")
@reports_errors
def create_tenants_command(source, jobs: int | None, as_json: bool, quiet: bool) -> None:  # type: ignore[no-untyped-def]
    """Create the tenants a file lists through the fleet runner, each all or nothing.

    A malformed line or a slug listed twice refuses the whole file (exit 2, nothing created).
    One tenant's failure (slug taken, database unreachable) leaves nothing of it and stops no
    other: exit 1. Ledger, run row and report as for upgrade-all-tenants.
    """
    from tenants.fleet.create import read_tenant_file

    _create_many(read_tenant_file(source.read(), source.name), jobs, as_json, quiet)


def _create_many(specs: list, jobs: int | None, as_json: bool, quiet: bool) -> None:
    """Create tenants through the fleet runner, show the run as upgrade-all-tenants does, and exit with its code."""
    from tenants.cli.output import Presenter
    from tenants.fleet.create import create_tenants
    from tenants.fleet.options import RunOptions

    presenter = Presenter(as_json=as_json, quiet=quiet)
    report = create_tenants(get_tenancy(), specs, RunOptions(jobs=jobs), presenter.event)
    presenter.finish(report)
    sys.exit(report.exit_code)


@click.command("list-tenants")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for scripts.")
@reports_errors
def list_tenants_command(as_json: bool) -> None:
    """List tenants with status, revision and whether they are at head."""
    from tenants.cli.output import echo_json
    from tenants.fleet.report import json_list
    from tenants.migrate.overview import tenant_overview

    rows = tenant_overview(get_tenancy())
    if as_json:
        echo_json(json_list(rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("slug", "status", "revision", "at head", "last change", "storage")
    for row in rows:
        table.add_row(row["slug"], row["status"], row["revision"] or "-", "yes" if row["at_head"] else "no",
                      str(row["last_change"] or "-"), row["storage"] + (f" ({row['error']})" if row["error"] else ""))
    Console(width=160).print(table)


@click.command("drop-tenant")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@reports_errors
def drop_tenant_command(slug: str, yes: bool) -> None:
    """Delete a tenant with all its data (asks first)."""
    from tenants.migrate.lifecycle import drop_tenant

    tenancy = get_tenancy()
    tenancy.registry.get(slug)
    if not yes:
        if not sys.stdin.isatty():
            fail(f"refusing to drop tenant {slug!r} without confirmation: pass --yes", 2)
        click.confirm(f"Drop tenant {slug!r} and ALL its data?", abort=True)
    drop_tenant(tenancy, slug)
    click.echo(f"dropped tenant {slug}")


def _move(slug: str, to: str, downgrade: bool, allow_destructive: bool, strict: bool, backup: bool,
          accept_live: bool = False) -> None:
    """Move one tenant through the guarded path and say what happened, as upgrade-all-tenants would."""
    from tenants.fleet.options import RunOptions
    from tenants.fleet.single import move_tenant

    tenancy = get_tenancy()
    tenancy.registry.get(slug)  # an unknown slug is bad usage before anything is read
    options = RunOptions(allow_destructive=allow_destructive, strict=strict, backup=backup, replay=not downgrade,
                         accept_live=accept_live)
    report = move_tenant(tenancy, slug, to, downgrade=downgrade, options=options)
    for note in report.notes:
        click.echo(f"note: {mask_secrets(note)}")
    result = report.final().get(slug)
    if result is None:
        item = next(report.plan.items, None)
        click.echo(f"{slug}: already at {(item.current if item else None) or 'base'}")
    elif result.status == "ok":
        click.echo(f"{slug}: {result.from_revision or 'base'} -> {result.to_revision or 'base'} "
                   f"({result.detail}, {result.duration_ms:.0f} ms; run {report.run_id})")
    else:
        click.echo(f"Error: {mask_secrets(result.error or result.status)}", err=True)
    sys.exit(report.exit_code)


def guard_options(command):  # type: ignore[no-untyped-def]
    """The lint gate's options, as upgrade-all-tenants has them."""
    for option in reversed([
        click.option("--allow-destructive", is_flag=True,
                     help="Let reviewed data-loss hazards through the lint gate (the tenant is backed up first)."),
        click.option("--strict", is_flag=True, help="Stop on lock and other lint warnings too."),
        click.option("--backup", is_flag=True, help="Back the tenant up before it moves."),
    ]):
        command = option(command)
    return command


@click.command("upgrade-tenant")
@click.argument("slug")
@click.option("--to", default="head", show_default=True, help="Target revision.")
@click.option("--accept-live", is_flag=True,
              help="Upgrade a tenant found below its ledger revision (emptied or replaced) from its live state.")
@guard_options
@reports_errors
def upgrade_tenant_command(slug: str, to: str, accept_live: bool, allow_destructive: bool, strict: bool,
                           backup: bool) -> None:
    """Upgrade one tenant to a revision, all steps in one transaction, past the same gate as the fleet.

    Exit codes as for upgrade-all-tenants: 0 done, 1 failed (nothing changed), 2 bad usage or a
    blocking lint hazard, 3 the tenant is busy or unreachable.
    """
    _move(slug, to, False, allow_destructive, strict, backup, accept_live)


@click.command("downgrade-tenant")
@click.argument("slug")
@click.option("--to", required=True, help="Target revision, or -1, -2, ... ('base' removes every table).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@guard_options
@reports_errors
def downgrade_tenant_command(slug: str, to: str, yes: bool, allow_destructive: bool, strict: bool,
                             backup: bool) -> None:
    """Downgrade one tenant to an older revision (asks first), past the lint gate on the downgrade bodies.

    A downgrade that drops data is refused (exit 2) unless --allow-destructive, which backs the tenant up first.
    """
    if not yes:
        if not sys.stdin.isatty():
            fail(f"refusing to downgrade tenant {slug!r} without confirmation: pass --yes", 2)
        click.confirm(f"Downgrade tenant {slug!r} to {to}? Data in dropped columns is lost.", abort=True)
    _move(slug, to, True, allow_destructive, strict, backup)


COMMANDS = [
    migrate_control_command, create_tenant_command, create_tenants_command, list_tenants_command, drop_tenant_command,
    upgrade_tenant_command, downgrade_tenant_command,
]

