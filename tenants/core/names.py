"""Tenant slugs and SQL identifiers: the one module that checks and quotes them.

No other code formats a schema or database name into SQL; it asks this module.
"""

import hashlib
import re

from tenants.core.errors import InvalidTenantName

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_]{1,39}")
SCHEMA_PREFIX = "tenant_"

# Names that collide with PostgreSQL's own schemas, SQL keywords or the portal's own parts.
RESERVED = frozenset(
    {
        "public", "information_schema", "control", "admin", "static", "api", "default",
        "postgres", "template0", "template1", "root", "all", "none", "null", "user",
        "select", "table", "schema", "tenant", "tenants", "login", "logout",
    }
)


def validate_slug(slug: str) -> str:
    """Return `slug` if it passes the whitelist, else raise InvalidTenantName."""
    if not isinstance(slug, str) or not SLUG_PATTERN.fullmatch(slug):
        raise InvalidTenantName(
            f"invalid tenant name {slug!r}: use 2-40 characters, a lower-case letter first, "
            "then lower-case letters, digits or '_'"
        )
    if slug in RESERVED or slug.startswith("pg_"):
        raise InvalidTenantName(f"invalid tenant name {slug!r}: the name is reserved")
    return slug


def schema_name(slug: str) -> str:
    """Return the PostgreSQL schema that holds the tenant's tables."""
    return SCHEMA_PREFIX + validate_slug(slug)


def quote_ident(name: str) -> str:
    """Quote a checked identifier for PostgreSQL and SQLite."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise InvalidTenantName(f"refusing to quote identifier {name!r}")
    return '"' + name + '"'


def quoted_schema(slug: str) -> str:
    """Return the tenant's schema name, validated and quoted for SQL."""
    return quote_ident(schema_name(slug))


def lock_key(slug: str) -> int:
    """Return a stable signed 64-bit advisory-lock key for the tenant."""
    digest = hashlib.blake2b(f"tenant-portal:{slug}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def search_path_sql(slug: str) -> str:
    """Return `SET search_path` for the tenant's schema (offline SQL scripts only)."""
    return "SET search_path TO " + quoted_schema(slug)
