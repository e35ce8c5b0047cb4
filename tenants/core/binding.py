"""Bind ORM work to exactly one tenant."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from tenants.core.errors import StorageUnavailable
from tenants.core.storage import TenantStorage


def tenant_sessionmaker(storage: TenantStorage) -> sessionmaker[Session]:
    """Return a session factory whose sessions read and write this tenant only."""
    return sessionmaker(bind=storage.orm_bind(), expire_on_commit=False)


@contextmanager
def tenant_session(storage: TenantStorage) -> Iterator[Session]:
    """Yield a session bound to the tenant; roll back what was not committed, then close.

    A tenant file that SQLite cannot read at all (not a database, a malformed image) raises
    StorageUnavailable, so a page over many tenants can name it and serve the others.
    """
    session = tenant_sessionmaker(storage)()
    try:
        yield session
    except DatabaseError as e:
        session.rollback()
        if type(getattr(e, "orig", None)) is not sqlite3.DatabaseError:  # constraint, lock, ...: the caller's
            raise
        reason = str(e.orig).strip().splitlines()
        raise StorageUnavailable(f"tenant {storage.slug!r} cannot be read ({storage.describe()}): "
                                 f"{reason[0] if reason else 'unreadable'}; restore it from a backup") from e
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
