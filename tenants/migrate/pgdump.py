"""pg_dump, found and run one way: for tenant backups (safety.backups) and template dumps (pg_template)."""

import os
import re
import shutil
import subprocess
from functools import lru_cache

from sqlalchemy.engine import URL, make_url


def pg_dump_major() -> int | None:
    """Return the major version of the pg_dump on PATH, or None when there is none or it does not run."""
    return _tool_major(shutil.which("pg_dump"))


@lru_cache(maxsize=8)  # per tool path: `pg_dump --version` is a process start
def _tool_major(tool: str | None) -> int | None:
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
        # "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)": the first number after the product name.
        return int(re.search(r"(\d+)", out.split(")", 1)[-1]).group(1))  # type: ignore[union-attr]
    except (OSError, subprocess.SubprocessError, AttributeError, ValueError):
        return None


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """Return (connection URI without its password, environment with PGPASSWORD) for a libpq tool.

    The URI keeps the URL's query options (sslmode, sslrootcert, options, ...), which libpq reads
    itself; the password goes in the environment, so it never appears on a command line.
    """
    parsed = make_url(url)
    uri = URL.create("postgresql", parsed.username, None, parsed.host, parsed.port, parsed.database,
                     parsed.query).render_as_string(hide_password=False)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return uri, env


def run_pg_dump(url: str, args: list[str], timeout: float) -> str:
    """Run pg_dump with `args` against the database of `url`; return what it wrote to stdout.

    RuntimeError("pg_dump failed: ...") names pg_dump's error line when it exits non-zero.
    """
    uri, env = libpq_target(url)
    command = [shutil.which("pg_dump") or "pg_dump", f"--dbname={uri}", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no message"]
        raise RuntimeError("pg_dump failed: " + next((line for line in lines if "error" in line), lines[0]))
    return done.stdout
