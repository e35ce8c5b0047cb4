"""Times and durations as people read them (lists and details; exports keep the machine form)."""

from datetime import UTC, datetime
from typing import Any

from flask_admin.model import typefmt


def human_time(moment: datetime | None) -> str:
    """Return `2026-11-30 11:49 UTC` (stored times are UTC; SQLite's come back naive)."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def human_duration(ms: float | None) -> str:
    """Return `350 ms`, `4.2 s`, `3 min 5 s` or `2 h 10 min`."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _time(view: Any, value: datetime, name: str) -> str:
    return human_time(value)


LIST_FORMATTERS = {**typefmt.BASE_FORMATTERS, datetime: _time}
DETAIL_FORMATTERS = {**typefmt.DETAIL_FORMATTERS, datetime: _time}
