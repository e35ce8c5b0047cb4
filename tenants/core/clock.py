"""Time as the control plane records it: timezone-aware UTC."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time, timezone-aware."""
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """Return `moment` with its zone: SQLite hands timestamps back without one, and they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
