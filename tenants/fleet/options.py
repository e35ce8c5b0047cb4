"""How a fleet run goes: the options an operator or a scheduler chose, frozen for the whole run."""

from collections.abc import Callable
from dataclasses import asdict, dataclass

from tenants.core.errors import InvalidUsage
from tenants.core.tenancy import Tenancy
from tenants.migrate.plan import Plan

# A check run on the plan after the fleet lock is taken and before any tenant is touched: it
# returns notes for the report, or raises a TenantError to refuse the run.
PlanCheck = Callable[[Tenancy, Plan, "RunOptions"], list[str] | None]


@dataclass(frozen=True)
class RunOptions:
    """How a run goes; None means the settings' or the database's default.

    Frozen: one options object can serve any number of runs. What a run learns while it runs
    (the gate's verdict, why it stopped) lives in the run (tenants.fleet.runner.FleetRun).
    """

    jobs: int | None = None
    fail_fast: bool = False
    canary: int = 0
    lock_timeout: float | None = None
    statement_timeout: float | None = None
    max_duration: float | None = None
    retry_busy: bool = False
    dry_run: bool = False
    replay: bool = True
    started_by: str | None = None
    plan_checks: tuple[PlanCheck, ...] = ()
    allow_destructive: bool = False
    strict: bool = False
    backup: bool = False
    heartbeat_every: float = 10.0  # at most; a third of the staleness limit when that is shorter
    stale_after: float | None = None  # seconds; None: the settings' lock_stale_after (PORTAL_LOCK_STALE_AFTER)
    jobs_per_server: int | None = None  # at most this many tenants of one database server at once
    via: str | None = None  # None: this machine's process pool; "celery": Celery workers
    no_wait: bool = False  # celery: return once the run is handed to the workers
    # Single-tenant commands run without the fleet lock: the tenant's own lock keeps two runs of
    # it apart, and a fleet run in progress must not make one tenant's fix wait for the whole fleet.
    fleet_lock: bool = True
    accept_live: bool = False  # upgrade a tenant found below its ledger revision from its live state
    rehearse: bool = False  # run each tenant's revisions in its transaction and roll back: change nothing
    rehearse_first: bool = False  # rehearse the whole selection, then apply only if every tenant passed
    wait_timeout: float | None = None  # celery: stop following the run after this long (it goes on)

    def validate(self) -> None:
        """Refuse impossible values before anything is read or changed."""
        if self.jobs is not None and self.jobs < 1:
            raise InvalidUsage(f"--jobs must be at least 1, not {self.jobs}")
        if self.jobs_per_server is not None and self.jobs_per_server < 1:
            raise InvalidUsage(f"--jobs-per-server must be at least 1, not {self.jobs_per_server}")
        if self.via not in (None, "local", "celery"):
            raise InvalidUsage(f"--via must be 'local' or 'celery', not {self.via!r}")
        if not self.fleet_lock and self.via == "celery":
            raise InvalidUsage("a run handed to Celery workers holds the fleet lock: it cannot run without it")
        if self.rehearse and self.rehearse_first:
            raise InvalidUsage("--rehearse and --rehearse-first exclude each other: --rehearse changes nothing")
        if (self.rehearse or self.rehearse_first) and (self.via == "celery" or self.dry_run):
            raise InvalidUsage("a rehearsal runs on this machine and does the work: not with --via celery or --dry-run")
        if self.no_wait and self.via != "celery":
            raise InvalidUsage("--no-wait needs --via celery: a local run ends with this command")
        if self.wait_timeout is not None and (self.via != "celery" or self.no_wait):
            raise InvalidUsage("--timeout bounds the wait for a run handed to Celery: it needs --via celery "
                               "without --no-wait")
        if self.canary < 0:
            raise InvalidUsage(f"--canary must not be negative, not {self.canary}")
        for name in ("lock_timeout", "statement_timeout", "max_duration", "stale_after", "wait_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidUsage(f"--{name.replace('_', '-')} must be positive, not {value}")

    def recorded(self) -> dict:
        """The options as written to the run row."""
        return {k: v for k, v in asdict(self).items()
                if k != "plan_checks" and v not in (None, False, 0, [], ())}
