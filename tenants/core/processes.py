"""Processes of this host: whether the one named by a record (a lock holder, a creator) still runs."""

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Return whether a process with this pid runs on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
