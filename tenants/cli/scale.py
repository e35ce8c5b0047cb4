"""Commands for runs beyond this machine: run-status (a run's report, later) and worker (a Celery worker)."""

import json
import sys
import time
from typing import Any

import click

from tenants.cli.context import get_tenancy
from tenants.cli.exit_codes import fail, reports_errors
from tenants.migrate.control import ensure_control


@click.command("run-status")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report (for scheduled jobs).")
@click.option("--wait", is_flag=True, help="Follow a run still under way until every tenant has a result.")
@click.option("--timeout", type=float, metavar="SECONDS", help="With --wait: stop waiting after this long (exit 5).")
@reports_errors
def run_status_command(run_id: str, as_json: bool, wait: bool, timeout: float | None) -> None:
    """Report a run: its summary and exit code, as the command that started it would print them.

    A run handed to Celery is closed here if its last tenant has a result and no worker closed
    it yet, and a stalled slot is sent again or failed (the watchdog, after PORTAL_STALL_AFTER
    seconds). Exit codes as for upgrade-all-tenants, and 5: still under way (see --wait, --timeout).
    """
    from tenants.cli.output import Presenter, result_line
    from tenants.core.engines import mask_secrets
    from tenants.fleet.celery.watchdog import watch_run
    from tenants.fleet.run_status import finalise_if_complete, load_report, progress, results_since, run_summary

    if timeout is not None and (not wait or timeout <= 0):
        fail("--timeout needs --wait and a positive number of seconds", 2)
    tenancy = get_tenancy()
    ensure_control(tenancy)
    engine = tenancy.control_engine
    seen = 0
    answered: set[str] = set()  # tenants with a result shown: a slot sent again may record a second one
    started = time.monotonic()
    watched = 0.0
    notes: list[str] = []
    while True:
        finalise_if_complete(engine, run_id)
        report = load_report(engine, run_id)
        expected = report.plan.count("pending") + report.plan.count("error")  # the tenants that get a result
        if wait and not as_json:  # before leaving too: the last results came with the run's end
            for result_id, result in results_since(engine, run_id, seen):
                seen = result_id
                answered.add(result.slug)
                click.echo(result_line(result, len(answered), expected))
        if not wait or report.status != "running":
            break
        if timeout is not None and time.monotonic() - started > timeout:
            notes.append(f"stopped waiting after --timeout {timeout:g} s; the run goes on")
            break
        if time.monotonic() - watched > 2:
            watched = time.monotonic()
            for note in watch_run(tenancy, run_id, tenancy.settings.stall_after):
                notes.append(note)
                if not as_json:
                    click.echo(mask_secrets(f"note: {note}"))
        time.sleep(0.5)
    report.notes += [note for note in notes if note not in report.notes]
    if as_json:
        summary = run_summary(engine, run_id)
        summary["notes"] += [note for note in notes if note not in summary["notes"]]
        click.echo(mask_secrets(json.dumps(summary, indent=2, default=str)))
        sys.exit(report.exit_code)
    if report.status == "running":
        waiting = progress(engine, run_id)["waiting"]
        click.echo(f"run {run_id} is under way: {sum(report.statuses.values()) + len(report.not_started)} of "
                   f"{expected} tenants have a result; "
                   "waiting per server: "
                   + (", ".join(f"{server} {count}" for server, count in sorted(waiting.items())) or "none"))
    Presenter().finish(report)
    sys.exit(report.exit_code)


@click.command("worker", context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", "-c", type=int, help="Processes of this worker (default: one per CPU).")
@click.option("--loglevel", "-l", default="INFO", show_default=True, help="Celery log level.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker_command(concurrency: int | None, loglevel: str, celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker for tenant runs: `celery -A tenants.fleet.celery.app worker` with the project's app.

    Broker and queue from CELERY_BROKER_URL and CELERY_QUEUE; the databases from DATABASE_URL
    and PORTAL_*, which must match the command that dispatches runs. Other arguments go to Celery.
    """
    from tenants.fleet.celery.app import app

    argv: list[Any] = ["worker", f"--loglevel={loglevel}"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    app.worker_main([*argv, *celery_args])


COMMANDS = [run_status_command, worker_command]

