"""The fleet's entry points: upgrade, downgrade, or run a maintenance task over the selected tenants.

The CLI, the console and schedulers call these and only present the RunReport. A run: control
plane first -> plan from bulk reads, a page of tenants at a time -> (nothing to do: record, return) -> fleet lock ->
plan checks (the lint gate) -> run row -> tenants through this machine's process
pool (tenants.fleet.runner) or Celery workers (tenants.fleet.celery.dispatch) -> final status.
"""

from collections.abc import Callable
from dataclasses import replace

from tenants.core.errors import InvalidUsage
from tenants.core.tenancy import Tenancy
from tenants.fleet.options import PlanCheck, RunOptions
from tenants.fleet.report import RunReport
from tenants.fleet.runner import Event, FleetRun
from tenants.fleet.tasks import UNIT_PREFIX, get_task
from tenants.migrate.control import ensure_control
from tenants.migrate.migrator import relative_target, resolve_target
from tenants.migrate.plan import Plan, TenantPlan, check_canary, plan_migration, plan_task
from tenants.migrate.replay import render_pending
from tenants.migrate.selection import Selection, select_tenants
from tenants.migrate.versions import read_versions
from tenants.safety.gate import LintGate


def upgrade_tenants(tenancy: Tenancy, selection: Selection, target: str | None = "head",
                    options: RunOptions | None = None, on_event: Event | None = None) -> RunReport:
    """Bring the selected tenants to `target` (default head), past the lint gate; see the module docstring.

    `rehearse` changes nothing; `rehearse_first` applies only after every selected tenant rehearsed ok.
    """
    options = options or RunOptions()
    if options.rehearse_first:
        return _rehearse_then_apply(upgrade_tenants, tenancy, selection, target, options, on_event)
    gate = LintGate(options.allow_destructive, options.strict, options.backup and not options.rehearse)
    return _migrate(tenancy, selection, target, False, options, on_event, gate)


def downgrade_tenants(tenancy: Tenancy, selection: Selection, target: str | None,
                      options: RunOptions | None = None, on_event: Event | None = None) -> RunReport:
    """Take the selected tenants back to `target` ('base' removes every table), past the lint gate too.

    The gate reads the downgrade bodies: one that drops data stops the run unless it allows
    destructive changes, and then each tenant it would lose data of is backed up first.
    `rehearse` and `rehearse_first` work as for upgrades.
    """
    options = options or RunOptions()
    if options.rehearse_first:
        return _rehearse_then_apply(downgrade_tenants, tenancy, selection, target, options, on_event)
    gate = LintGate(options.allow_destructive, options.strict, options.backup and not options.rehearse,
                    downgrade=True)
    return _migrate(tenancy, selection, target, True, options, on_event, gate)


def _rehearse_then_apply(move: Callable[..., RunReport], tenancy: Tenancy, selection: Selection,
                         target: str | None, options: RunOptions, on_event: Event | None) -> RunReport:
    """Rehearse the whole selection; apply only if every tenant would succeed (else return the rehearsal)."""
    options.validate()
    rehearsal = move(tenancy, selection, target, replace(options, rehearse=True, rehearse_first=False), on_event)
    if rehearsal.exit_code != 0:
        rehearsal.notes.append("the rehearsal did not pass for every tenant: nothing was applied")
        return rehearsal
    report = move(tenancy, selection, target, replace(options, rehearse_first=False), on_event)
    report.notes.insert(0, f"rehearsal run {rehearsal.run_id}: every tenant would succeed")
    return report


def check_executor(tenancy: Tenancy, options: RunOptions) -> None:
    """Refuse what the chosen executor cannot do before anything is changed (Celery: reach the broker)."""
    if options.via == "celery":
        from tenants.fleet.celery.dispatch import check_celery_run

        check_celery_run(tenancy, options)


def fleet_run(tenancy: Tenancy, plan: Plan, unit: str, params: Callable[[TenantPlan], dict],
              options: RunOptions, on_event: Event | None, checks: tuple[PlanCheck, ...] = ()) -> FleetRun:
    """Return the runner for `options.via`: this machine's process pool, or Celery workers."""
    if options.via == "celery":
        # Celery loads only for runs that use it.
        from tenants.fleet.celery.dispatch import CeleryFleetRun

        return CeleryFleetRun(tenancy, plan, unit, params, options, on_event, checks)
    return FleetRun(tenancy, plan, unit, params, options, on_event, checks)


def prepare_migration(tenancy: Tenancy, selection: Selection, target: str | None, downgrade: bool,
                      options: RunOptions) -> Plan:
    """Validate, upgrade the control plane, select tenants and plan; raise on bad usage."""
    options.validate()
    check_executor(tenancy, options)
    ensure_control(tenancy)
    if downgrade and isinstance(target, str) and target.startswith("-"):
        target = _from_relative(tenancy, selection, target)
    resolved = resolve_target(tenancy.scripts, target)
    chosen = select_tenants(tenancy, selection)
    plan = plan_migration(tenancy, chosen, resolved, downgrade=downgrade, skipped=chosen.skipped,
                          drift=not options.accept_live)
    check_canary(options.canary, plan)
    return plan


def _from_relative(tenancy: Tenancy, selection: Selection, target: str) -> str:
    """Turn a relative downgrade target (-1, -2, ...) into a revision; the selection must share one revision."""
    currents = {read.revision for page in select_tenants(tenancy, selection)
                for read in read_versions(tenancy, page).values() if read.error is None}
    if len(currents) != 1:
        raise InvalidUsage(f"--to {target} is relative: the selected tenants must be at one revision, not at "
                           f"{', '.join(sorted(c or 'base' for c in currents)) or 'none readable'}; name a revision")
    return relative_target(tenancy.scripts, currents.pop(), target) or "base"


def _migrate(tenancy: Tenancy, selection: Selection, target: str | None, downgrade: bool,
             options: RunOptions, on_event: Event | None, gate: LintGate | None) -> RunReport:
    plan = prepare_migration(tenancy, selection, target, downgrade, options)
    rendered = render_pending(tenancy, plan) if options.replay and not downgrade and not options.dry_run else {}
    lock_timeout, statement_timeout = options.lock_timeout, options.statement_timeout

    def params(item: TenantPlan) -> dict:
        return {"target": plan.target, "downgrade": downgrade, "from": item.current,
                "outside": item.outside_transaction, "rendered": rendered.get(item.current),
                "lock_timeout": lock_timeout, "statement_timeout": statement_timeout,
                "backup": not options.rehearse and gate is not None and gate.needs_backup(item.steps),
                "rehearse": options.rehearse}

    return fleet_run(tenancy, plan, "migrate", params, options, on_event, (gate,) if gate else ()).execute()


def for_each_tenant(tenancy: Tenancy, task: str, selection: Selection, task_params: dict | None = None,
                    options: RunOptions | None = None, on_event: Event | None = None) -> RunReport:
    """Run a registered maintenance task on every selected tenant through the same runner."""
    options = options or RunOptions()
    options.validate()
    get_task(task)
    if task == "sql":
        # pglast (about 0.2 s to import) loads only for a SQL file: an upgrade, even a no-op, never needs it.
        from tenants.fleet.sql_file import check_sql_file

        check_sql_file((task_params or {}).get("sql", ""), (task_params or {}).get("path", "the SQL file"))
    check_executor(tenancy, options)
    ensure_control(tenancy)
    chosen = select_tenants(tenancy, selection, migrations=False)
    plan = plan_task(task, (tenant for page in chosen for tenant in page), chosen.skipped)
    check_canary(options.canary, plan)
    base = {**(task_params or {}), "lock_timeout": options.lock_timeout,
            "statement_timeout": options.statement_timeout}
    return fleet_run(tenancy, plan, UNIT_PREFIX + task, lambda item: base, options, on_event).execute()


