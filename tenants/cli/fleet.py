"""Fleet commands: upgrade-all-tenants, downgrade-tenants, tenant-versions, for-each-tenant.

Each body is one call into tenants.fleet.runs plus presentation. Library modules are imported
inside the commands, so `manage.py` start-up pays only for click here.
"""

import functools
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tenants.cli.context import get_tenancy
from tenants.cli.exit_codes import fail, reports_errors
from tenants.core.engines import mask_secrets


def selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --tenant, --skip-tenant and --only-failed."""
    for option in reversed([
        click.option("--tenant", "tenants", multiple=True, metavar="SLUG",
                     help="Only this tenant (repeatable); includes a suspended tenant."),
        click.option("--skip-tenant", "skip", multiple=True, metavar="SLUG",
                     help="Leave this tenant out (repeatable)."),
        click.option("--only-failed", is_flag=True, help="Only tenants whose last result was not ok."),
    ]):
        command = option(command)
    return command


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options every fleet run shares (workers, failure policy, timeouts, output)."""
    for option in reversed([
        click.option("--jobs", type=int, help="Worker processes (default: up to 4 on PostgreSQL, 2 on SQLite)."),
        click.option("--jobs-per-server", type=int, metavar="N",
                     help="At most N tenants of one database server at once (host:port; SQLite: a folder)."),
        click.option("--via", type=click.Choice(["local", "celery"]), default="local", show_default=True,
                     help="Run the tenants in this machine's process pool, or in Celery workers."),
        click.option("--no-wait", is_flag=True, help="With --via celery: print the run id and return at once."),
        click.option("--timeout", type=float, metavar="SECONDS",
                     help="With --via celery: stop waiting after this long (exit 5; the run goes on)."),
        click.option("--fail-fast", is_flag=True, help="Start no new tenant after the first failure."),
        click.option("--canary", type=int, default=0, metavar="N",
                     help="Run N tenants first; stop if any of them fails."),
        click.option("--lock-timeout", type=float, metavar="SECONDS",
                     help="How long a tenant may wait for a lock (default PORTAL_LOCK_TIMEOUT or 5)."),
        click.option("--statement-timeout", type=float, metavar="SECONDS",
                     help="How long one statement may run (default PORTAL_STATEMENT_TIMEOUT or 300)."),
        click.option("--max-duration", type=float, metavar="SECONDS",
                     help="Start no new tenant after this long; exit 4 if tenants were left."),
        click.option("--retry-busy", is_flag=True, help="Retry busy and timed-out tenants once at the end."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON report (for scheduled jobs)."),
        click.option("--quiet", is_flag=True, help="Print only failures and the summary."),
    ]):
        command = option(command)
    return command


def _options(kw: dict, **extra: Any) -> Any:
    from tenants.fleet.options import RunOptions

    return RunOptions(jobs=kw["jobs"], fail_fast=kw["fail_fast"], canary=kw["canary"],
                      lock_timeout=kw["lock_timeout"], statement_timeout=kw["statement_timeout"],
                      max_duration=kw["max_duration"], retry_busy=kw["retry_busy"],
                      jobs_per_server=kw.get("jobs_per_server"), via=kw.get("via"), no_wait=kw.get("no_wait", False),
                      wait_timeout=kw.get("timeout"), **extra)


def _selection(kw: dict) -> Any:
    from tenants.migrate.selection import Selection

    return Selection(tuple(kw["tenants"]), tuple(kw["skip"]), kw["only_failed"])


def _present(kw: dict, run: Callable[[Any], Any]) -> None:
    from tenants.cli.output import Presenter

    presenter = Presenter(as_json=kw["as_json"], quiet=kw["quiet"], detail=kw.get("dry_run", False))
    report = run(presenter.event)
    presenter.finish(report)
    sys.exit(report.exit_code)


def _print_sql(target: str | None, downgrade: bool, kw: dict) -> None:
    from tenants.fleet.runs import prepare_migration
    from tenants.migrate.replay import plan_sql

    tenancy = get_tenancy()
    # --sql only renders: it never needs the Celery broker
    local = {**kw, "via": None, "no_wait": False, "timeout": None}
    plan = prepare_migration(tenancy, _selection(kw), target, downgrade, _options(local))
    errors = 0
    for slug, script, error in plan_sql(tenancy, plan):
        if error:
            errors += 1
            click.echo(f"-- tenant {slug}: {error}", err=True)
        else:
            click.echo(f"-- tenant {slug}\n{script}\n")
    sys.exit(1 if errors else 0)


def migration_command(function: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by upgrade-all-tenants and downgrade-tenants."""

    @selection_options
    @run_options
    @click.option("--dry-run", is_flag=True, help="Print the plan and stop.")
    @click.option("--sql", "as_sql", is_flag=True, help="Print each pending tenant's SQL; change nothing.")
    @click.option("--no-replay", is_flag=True, help="Run Alembic per tenant instead of replaying rendered SQL.")
    @reports_errors
    @functools.wraps(function)
    def wrapper(**kw: Any) -> Any:
        return function(**kw)

    return wrapper


@click.command("upgrade-all-tenants")
@click.option("--to", "target", default="head", show_default=True, help="Target revision.")
@click.option("--allow-destructive", is_flag=True,
              help="Let reviewed data-loss hazards through the lint gate (tenants are backed up first).")
@click.option("--strict", is_flag=True, help="Stop on lock and other lint warnings too.")
@click.option("--backup", is_flag=True, help="Back up every tenant before it migrates.")
@click.option("--rehearse", is_flag=True,
              help="Run each tenant's revisions in its transaction and roll back: report, change nothing.")
@click.option("--rehearse-first", is_flag=True, help="Rehearse every selected tenant, then apply only if all pass.")
@migration_command
def upgrade_all_tenants_command(target: str, allow_destructive: bool, strict: bool, backup: bool, rehearse: bool,
                                rehearse_first: bool, **kw: Any) -> None:
    """Upgrade the control plane, then every active tenant, each in its own transaction.

    Exit codes: 0 all at target; 1 some tenants failed; 2 bad usage (nothing changed);
    3 could not start (fleet lock held, database unreachable, all busy); 4 stopped by --max-duration.
    """
    if kw["as_sql"]:
        return _print_sql(target, False, kw)
    from tenants.fleet.runs import upgrade_tenants

    options = _options(kw, dry_run=kw["dry_run"], replay=not kw["no_replay"], allow_destructive=allow_destructive,
                       strict=strict, backup=backup, rehearse=rehearse, rehearse_first=rehearse_first)
    _present(kw, lambda on_event: upgrade_tenants(get_tenancy(), _selection(kw), target, options, on_event))


@click.command("downgrade-tenants")
@click.option("--to", "target", required=True,
              help="Target revision, or -1, -2, ... when the selected tenants share one ('base' removes every table).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@click.option("--allow-destructive", is_flag=True,
              help="Let downgrades that drop data through the lint gate (tenants are backed up first).")
@click.option("--strict", is_flag=True, help="Stop on lock and other lint warnings too.")
@click.option("--backup", is_flag=True, help="Back up every tenant before it moves.")
@click.option("--rehearse", is_flag=True,
              help="Run each tenant's downgrade in its transaction and roll back: report, change nothing.")
@click.option("--rehearse-first", is_flag=True, help="Rehearse every selected tenant, then apply only if all pass.")
@migration_command
def downgrade_tenants_command(target: str, yes: bool, allow_destructive: bool, strict: bool, backup: bool,
                              rehearse: bool, rehearse_first: bool, **kw: Any) -> None:
    """Take the selected tenants back to an older revision (asks first), past the lint gate on the downgrade bodies.

    Exit codes as for upgrade-all-tenants; a downgrade that drops data exits 2 without --allow-destructive.
    --rehearse changes nothing, so it does not ask.
    """
    if kw["as_sql"]:
        return _print_sql(target, True, kw)
    from tenants.fleet.runs import downgrade_tenants

    options = _options(kw, dry_run=kw["dry_run"], replay=False, allow_destructive=allow_destructive, strict=strict,
                       backup=backup, rehearse=rehearse, rehearse_first=rehearse_first)
    options.validate()  # bad usage (e.g. --rehearse with --rehearse-first) before the question
    if not yes and not kw["dry_run"] and not rehearse:
        if not sys.stdin.isatty():
            fail("refusing to downgrade tenants without confirmation: pass --yes", 2)
        click.confirm(f"Downgrade the selected tenants to {target}? Data in dropped columns is lost.", abort=True)
    _present(kw, lambda on_event: downgrade_tenants(get_tenancy(), _selection(kw), target, options, on_event))


@click.command("tenant-versions")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for scripts.")
@reports_errors
def tenant_versions_command(as_json: bool) -> None:
    """Show every tenant's current revision, the head, pending revisions, last migration and last task."""
    from tenants.cli.output import echo_json
    from tenants.fleet.report import json_list
    from tenants.migrate.overview import version_rows

    rows = version_rows(get_tenancy())
    if as_json:
        echo_json(json_list(rows))
        return
    head, at_head, unreadable, total = "-", 0, 0, 0
    for row in rows:
        last = f"{row['last_result']} {row['last_at']:%Y-%m-%d %H:%M}" if row["last_result"] else "-"
        task = (f"{row['last_task']} {row['last_task_result']} {row['last_task_at']:%Y-%m-%d %H:%M}"
                if row["last_task_result"] else "-")
        pending = "?" if row["pending"] is None else row["pending"]  # unmerged heads: no single target
        click.echo(f"{row['slug']:<40} {row['status']:<11} {row['revision'] or 'base':<14} "
                   f"pending {pending:<3} last migration {last}; last task {task}"
                   + (f"  ({mask_secrets(row['error'])})" if row["error"] else ""))
        head, total = row["head"], total + 1
        at_head += row["pending"] == 0 and not row["error"]
        unreadable += row["status"] == "unreachable"
    click.echo(f"head {head}; {at_head} of {total} tenants at head"
               + (f"; {unreadable} unreachable" if unreadable else ""))


@click.command("for-each-tenant")
@click.argument("task")
@click.argument("args", nargs=-1)
@selection_options
@run_options
@reports_errors
def for_each_tenant_command(task: str, args: tuple[str, ...], **kw: Any) -> None:
    """Run a maintenance TASK on every active tenant: analyze, vacuum, sql FILE, or a project's own.

    Same locks, timeouts, ledger records, progress and exit codes as upgrade-all-tenants.
    """
    from tenants.fleet.runs import for_each_tenant

    params: dict[str, Any] = {"args": list(args)}
    if task == "sql":
        if len(args) != 1:
            fail("name the reviewed SQL file: for-each-tenant sql FILE", 2)
        path = Path(args[0])
        if not path.is_file():
            fail(f"no SQL file {path}", 2)
        sql = path.read_text()
        params = {"sql": sql, "path": str(path), "sha256": hashlib.sha256(sql.encode()).hexdigest()}
    options = _options(kw)
    _present(kw, lambda on_event: for_each_tenant(get_tenancy(), task, _selection(kw), params, options, on_event))


COMMANDS = [upgrade_all_tenants_command, downgrade_tenants_command, tenant_versions_command, for_each_tenant_command]

