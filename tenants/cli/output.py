"""How a fleet run looks: a rich progress bar on a terminal, plain lines otherwise, or one JSON report."""

import sys
from collections.abc import Iterable

import click

from tenants.core.engines import mask_secrets
from tenants.core.ledger import TenantResult
from tenants.fleet.report import RunReport
from tenants.migrate.plan import Plan


def echo_json(chunks: Iterable[str]) -> None:
    """Print a JSON document given in pieces, each piece's secrets masked (a row never spans two pieces)."""
    for chunk in chunks:
        click.echo(mask_secrets(chunk), nl=False)
    click.echo()


def short(revision: str | None) -> str:
    """Return a revision id short enough for a progress line."""
    return (revision or "base")[:12]


def result_line(result: TenantResult, done: int, total: int) -> str:
    """Return `[12/200 acme] 3f2a -> 9c1b ok 41 ms`, with the error on failures."""
    head = f"[{done}/{total} {result.slug}]"
    if result.status == "ok" and result.from_revision == result.to_revision:
        return f"{head} ok {result.duration_ms:.0f} ms ({result.detail})"
    if result.status == "ok":
        moved = f"{short(result.from_revision)} -> {short(result.to_revision)}"
        return f"{head} {moved} ok {result.duration_ms:.0f} ms"
    return mask_secrets(f"{head} {result.status.upper()} {result.duration_ms:.0f} ms: {result.error}")


def plan_lines(plan: Plan, *, detail: bool) -> list[str]:
    """Describe the plan: counts, ranges, tenants left out, revisions that run outside a transaction."""
    if plan.kind not in ("upgrade", "downgrade"):
        lines = [f"plan: {plan.kind} on {plan.selected} tenants, {len(plan.skipped)} left out"]
        return lines + [f"  left out {slug}: {reason}" for slug, reason in plan.skipped]
    target = short(plan.target) + (" (head)" if plan.target == plan.head else "")
    lines = [f"plan: {plan.kind} to {target}: {plan.selected} tenants selected, {plan.count('pending')} pending, "
             f"{plan.count('at-target')} at target, {plan.count('error')} cannot be read, "
             f"{len(plan.skipped)} left out"]
    everyone: dict[str | None, list[str]] = {}
    if detail:  # every pending tenant by name: read back from the plan
        for item in plan.pending:
            everyone.setdefault(item.current, []).append(item.slug)
    for current, start in plan.starts.items():
        names = everyone.get(current) or start.sample
        more = "" if len(names) == start.count else ", ..."
        lines.append(f"  {start.count} tenants {short(current)} -> {short(plan.target)} "
                     f"({len(start.steps)} revisions): {', '.join(names)}{more}")
    for item in plan.errors:
        lines.append(f"  {item.slug}: {item.error}")
    for slug, reason in plan.skipped:
        lines.append(f"  left out {slug}: {reason}")
    for revision in plan.outside_transaction():
        lines.append(f"  NOTE revision {revision} cannot run in a transaction (e.g. CREATE INDEX CONCURRENTLY): "
                     "it runs alone, after the revisions before it have committed; if it fails the tenant "
                     "stays at the revision before it")
    return lines


class Presenter:
    """Turn run events into output: json (one report), quiet, rich (a terminal) or plain lines."""

    def __init__(self, *, as_json: bool = False, quiet: bool = False, detail: bool = False) -> None:
        self.as_json, self.quiet, self.detail = as_json, quiet, detail
        self.rich = not as_json and not quiet and sys.stdout.isatty()
        self.progress = None
        self.task = None
        self.failed = 0

    def event(self, kind: str, payload: object) -> None:
        """Receive one event from the runner."""
        if self.as_json:
            return
        if kind == "plan" and not self.quiet:
            for line in plan_lines(payload, detail=self.detail):  # type: ignore[arg-type]
                click.echo(line)
        elif kind == "result":
            result, done, total = payload  # type: ignore[misc]
            self._result(result, done, total)

    def _result(self, result: TenantResult, done: int, total: int) -> None:
        if result.status != "ok":
            self.failed += 1
        if self.rich:
            self._rich_result(result, done, total)
        elif not self.quiet or result.status != "ok":
            click.echo(result_line(result, done, total))

    def _rich_result(self, result: TenantResult, done: int, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if self.progress is None:
            # No refresh thread (auto_refresh=False): worker processes are forked while this runs.
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                     TextColumn("failures: {task.fields[failed]}"), auto_refresh=False)
            self.progress.start()
            self.task = self.progress.add_task("tenants", total=total, rate="", failed=0)
        if result.status != "ok":
            self.progress.console.print(result_line(result, done, total), markup=False, highlight=False)
        elapsed = self.progress.tasks[0].elapsed or 0.0
        rate = f"{done / elapsed:.1f}/s" if elapsed > 0 else ""
        self.progress.update(self.task, completed=done, total=total, rate=rate, failed=self.failed)
        self.progress.refresh()

    def finish(self, report: RunReport) -> None:
        """Print the summary (or the JSON report)."""
        if self.progress is not None:
            self.progress.stop()
        if report.error:
            click.echo(f"Error: {report.error}", err=True)
        if self.as_json:
            echo_json(report.json_chunks())
            return
        for note in report.notes:
            click.echo(mask_secrets(f"note: {note}"))
        if self.rich and report.results:
            self._summary_table(report)
        c = report.counts
        if report.status == "dry-run":
            click.echo(f"dry run: {report.plan.count('pending')} tenants pending; nothing was changed")
            return
        if report.status == "dispatched":
            click.echo(f"{report.kind} dispatched to Celery: {report.plan.count('pending')} tenants queued; "
                       f"run {report.run_id}; follow it with: manage.py run-status {report.run_id}")
            return
        click.echo(f"{report.kind} {report.status}: {c['ok']} ok, {c['failed']} failed, {c['timeout']} timed out, "
                   f"{c['unreachable']} unreachable, {c['busy']} busy, {c['at_target']} already at target, "
                   f"{c['not_started']} not started; run {report.run_id or '-'} in {report.duration_s:.2f} s "
                   f"(exit {report.exit_code})")

    def _summary_table(self, report: RunReport) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table("tenant", "status", "from", "to", "ms", "error")
        for result in report.final().values() if self.detail else report.failures():
            if result.status != "ok" or self.detail:
                table.add_row(result.slug, result.status, short(result.from_revision), short(result.to_revision),
                              f"{result.duration_ms:.0f}", result.error or "")
        if table.row_count:
            Console().print(table)
