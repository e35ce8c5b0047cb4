"""The few settings tenancy needs, read from the environment or handed in by the web app."""

import os
from dataclasses import dataclass
from pathlib import Path

from tenants.core.errors import InvalidUsage

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TenantSettings:
    """Where the control plane and the tenants live, and how long tenant work may wait."""

    control_url: str
    tenant_dir: Path
    revision_dir: Path = PROJECT_ROOT / "migrations"
    control_revision_dir: Path = PROJECT_ROOT / "migrations" / "control"
    lock_timeout: float = 5.0
    statement_timeout: float = 300.0
    # Seconds without a fleet-lock heartbeat after which a holder on another host counts as stale.
    lock_stale_after: float = 600.0
    # Seconds a slot of a run handed to Celery may show no progress before its task is sent again.
    stall_after: float = 120.0
    # Tenants a fleet run reads and plans at a time: what bounds its memory, however large the fleet.
    plan_page: int = 1000

    def __post_init__(self) -> None:
        if isinstance(self.plan_page, bool) or not isinstance(self.plan_page, int) or self.plan_page < 1:
            raise InvalidUsage(f"PORTAL_PLAN_PAGE must be a whole number of tenants, 1 or more, not {self.plan_page!r}")

    @classmethod
    def from_env(cls, instance_path: Path | None = None) -> "TenantSettings":
        """Build settings from DATABASE_URL and PORTAL_* variables, defaulting to SQLite."""
        instance = Path(instance_path or os.environ.get("PORTAL_INSTANCE_PATH") or PROJECT_ROOT / "instance")
        return cls(
            control_url=os.environ.get("DATABASE_URL") or default_control_url(instance),
            tenant_dir=Path(os.environ.get("PORTAL_TENANT_DIR") or instance / "tenants"),
            # Another tenant chain (benchmarks, fault tests); the project's own by default.
            revision_dir=Path(os.environ.get("PORTAL_REVISION_DIR") or PROJECT_ROOT / "migrations"),
            lock_timeout=float(os.environ.get("PORTAL_LOCK_TIMEOUT", "5")),
            statement_timeout=float(os.environ.get("PORTAL_STATEMENT_TIMEOUT", "300")),
            lock_stale_after=float(os.environ.get("PORTAL_LOCK_STALE_AFTER", "600")),
            stall_after=float(os.environ.get("PORTAL_STALL_AFTER", "120")),
            plan_page=_whole(os.environ.get("PORTAL_PLAN_PAGE", "1000")),
        )


def _whole(text: str) -> int | str:
    """Return `text` as an int, or as it is: the settings then refuse it in one line."""
    try:
        return int(text)
    except ValueError:
        return text


def default_control_url(instance_path: Path) -> str:
    """Return the embedded default: a SQLite control database in the instance folder."""
    return f"sqlite:///{Path(instance_path).resolve() / 'portal.sqlite3'}"
