"""Where a tenant's tables live: the interface every backend offers (tenants.core.backends picks one).

The rest of the code never asks which backend it holds: a PostgreSQL schema
(tenants.core.pg_schema) or a SQLite file (tenants.core.sqlite_file).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from tenants.core.names import validate_slug


class TenantStorage:
    """The storage unit of one tenant."""

    kind = "abstract"
    dialect = "abstract"

    def __init__(self, slug: str, url: str, engine: Engine) -> None:
        self.slug = validate_slug(slug)
        self.url = url
        self.engine = engine

    @property
    def version_table_schema(self) -> str | None:
        """The schema Alembic keeps this tenant's `alembic_version` in."""
        return None

    def describe(self) -> str:
        """Say where the tenant lives, without secrets."""
        raise NotImplementedError

    def exists(self) -> bool:
        """Return whether the tenant's schema or file exists."""
        raise NotImplementedError

    def create(self) -> None:
        """Create the empty schema or file; raise TenantExists if it is there already."""
        raise NotImplementedError

    def drop(self) -> None:
        """Delete the schema or file with everything in it."""
        raise NotImplementedError

    @contextmanager
    def dropping(self, lock_timeout: float) -> Iterator[None]:
        """Delete the schema or file under the tenant's lock; the caller's block runs before the deletion is final
        (an error in it deletes nothing). TenantBusy: another process holds the lock, or keeps a table locked."""
        raise NotImplementedError
        yield  # pragma: no cover

    def orm_bind(self) -> Engine:
        """Return a bind for ORM sessions that reads and writes this tenant only."""
        return self.engine

    @contextmanager
    def begin(self, *, exclusive: bool = False, lock_timeout: float = 5.0,
              timeouts: tuple[float, float] | None = None, revisions: bool = False,
              rehearse: bool = False) -> Iterator[Connection]:
        """Yield a connection in a transaction bound to this tenant; commit on success (roll back to `rehearse`).

        With `exclusive`, the tenant's lock is taken first and TenantBusy is raised when
        another process holds it (SQLite waits up to `lock_timeout` seconds for it).
        `timeouts` = (lock_timeout, statement_timeout) is applied as by `set_timeouts`.
        With `revisions` (the transaction runs revisions), SQLite follows its procedure for
        table rebuilds: foreign keys off for the transaction, `PRAGMA foreign_key_check`
        before commit (ForeignKeyViolation rolls it back).
        """
        raise NotImplementedError
        yield  # pragma: no cover

    def set_timeouts(self, connection: Connection, lock_timeout: float, statement_timeout: float) -> None:
        """Bound how long this transaction may wait for locks and run one statement."""
