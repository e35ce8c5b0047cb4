"""Which backend holds a tenant: picked from the tenant's own URL, else from the control database's."""

from pathlib import Path

from sqlalchemy.engine import make_url

from tenants.core.engines import Engines, display_url
from tenants.core.errors import StorageUnavailable
from tenants.core.names import validate_slug
from tenants.core.pg_schema import PostgresSchemaStorage
from tenants.core.sqlite_file import SqliteFileStorage
from tenants.core.storage import TenantStorage


def url_backend(url: str) -> str:
    """Return the backend a database URL names: `postgresql`, `sqlite`, or what else it says."""
    return url.split(":", 1)[0].split("+", 1)[0]


def storage_for(
    slug: str, database_url: str | None, control_url: str, tenant_dir: Path, engines: Engines
) -> TenantStorage:
    """Pick the backend from the tenant's own URL, else from the control database's."""
    url = database_url or control_url
    backend = url_backend(url)
    if backend == "postgresql":
        return PostgresSchemaStorage(slug, url, engines.get(url))
    if backend == "sqlite":
        if database_url:
            return SqliteFileStorage(slug, Path(make_url(database_url).database or ""), engines)
        return SqliteFileStorage(slug, Path(tenant_dir) / f"{validate_slug(slug)}.sqlite3", engines)
    raise StorageUnavailable(f"unsupported database {display_url(url)!r}: use postgresql:// or sqlite://")
