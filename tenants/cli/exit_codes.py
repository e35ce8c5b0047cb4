"""Errors to exit codes, in one table: every operator command exits through here on a TenantError.

0 done; 1 some work failed; 2 bad usage or input, nothing changed; 3 could not start (lock
held, database or broker unreachable), nothing changed. See README, "Exit codes".
"""

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from tenants.core.engines import mask_secrets
from tenants.core.errors import (
    ForeignKeyViolation,
    InvalidTenantName,
    InvalidUsage,
    MultipleHeads,
    RegistryMissing,
    SpoolFailed,
    StorageUnavailable,
    TenantBusy,
    TenantError,
    TenantExists,
    TenantNotFound,
)
from tenants.fleet.errors import BrokerUnreachable, FleetLocked, RunNotHere, UnknownRun
from tenants.fleet.report import EXIT_COULD_NOT_START, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from tenants.migrate.errors import InvalidRevision, MigrationFailed, MigrationTimeout
from tenants.safety.errors import AdoptionRefused, BackupFailed, BackupNotFound, GateBlocked, InvalidBackupSetting

#: The exit code of each error class; a subclass not listed takes its nearest listed base's code.
EXIT_CODES: dict[type[TenantError], int] = {
    TenantError: EXIT_FAILED,
    InvalidTenantName: EXIT_USAGE,
    TenantExists: EXIT_USAGE,
    TenantNotFound: EXIT_USAGE,
    InvalidUsage: EXIT_USAGE,
    StorageUnavailable: EXIT_COULD_NOT_START,
    TenantBusy: EXIT_COULD_NOT_START,
    ForeignKeyViolation: EXIT_FAILED,
    MultipleHeads: EXIT_USAGE,
    RegistryMissing: EXIT_COULD_NOT_START,
    SpoolFailed: EXIT_FAILED,
    InvalidRevision: EXIT_USAGE,
    MigrationFailed: EXIT_FAILED,
    MigrationTimeout: EXIT_FAILED,
    GateBlocked: EXIT_USAGE,
    BackupFailed: EXIT_FAILED,
    BackupNotFound: EXIT_USAGE,
    InvalidBackupSetting: EXIT_USAGE,
    AdoptionRefused: EXIT_USAGE,
    FleetLocked: EXIT_COULD_NOT_START,
    BrokerUnreachable: EXIT_COULD_NOT_START,
    RunNotHere: EXIT_COULD_NOT_START,
    UnknownRun: EXIT_USAGE,
}


def exit_code_for(error: TenantError) -> int:
    """Return the exit code for `error`: its own class's entry, else its nearest base's."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_FAILED


def fail(message: str, code: int) -> NoReturn:
    """Print a one-line error and exit with `code`."""
    click.echo(f"Error: {mask_secrets(message)}", err=True)
    sys.exit(code)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a TenantError into a one-line message and its exit code, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TenantError as e:
            fail(str(e), exit_code_for(e))
        except KeyboardInterrupt:  # a fleet run ends with its report instead (tenants.fleet.interrupt)
            fail("interrupted (Ctrl-C)", EXIT_INTERRUPTED)
        except Exception as e:
            # A database that went away where no library call expected it: one line, not a traceback.
            from sqlalchemy.exc import InterfaceError, OperationalError

            if not isinstance(e, (OperationalError, InterfaceError)):
                raise
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()
            fail(f"database unreachable: {reason[0] if reason else type(e).__name__}; see the run's record",
                 EXIT_COULD_NOT_START)

    return wrapper
