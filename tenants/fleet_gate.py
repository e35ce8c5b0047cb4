"""The migration gate as a plan check of upgrade runs: lint before any tenant is touched.

An unacknowledged data-loss hazard stops the run (GateBlocked, exit 2) unless the run allows
destructive changes; with `strict` the other hazards stop it too. Tenants about to run a
revision with a data-loss hazard are backed up first (see units.migrate_unit).
"""

from tenants.plan import Plan
from tenants.runtime import Tenancy


def lint_gate(tenancy: Tenancy, plan: Plan, options) -> list[str]:  # type: ignore[no-untyped-def]
    """Lint the revisions pending anywhere in the plan; raise GateBlocked or return warnings."""
    starts = {item.current for item in plan.pending}
    if not plan.pending:
        return []
    # pglast loads only when there is something to lint, so a no-op run stays fast.
    from tenants.gate import dialect_of, format_hazard, plan_gate

    dialect = dialect_of(tenancy.storage(item.tenant).dialect for item in plan.pending)
    report = plan_gate(tenancy.scripts, starts, plan.target, dialect, options.allow_destructive, options.strict)
    options.gate = report
    report.raise_if_blocked()
    return [f"migration hazard: {format_hazard(h)}" for h in report.hazards]


def needs_backup(options, steps: list[str]) -> bool:  # type: ignore[no-untyped-def]
    """Return whether a tenant running `steps` must be backed up before it migrates."""
    return options.backup or (options.gate is not None and options.gate.needs_backup(steps))
