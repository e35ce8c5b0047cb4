"""Bind ORM work to exactly one tenant."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from tenants.core.storage import TenantStorage


def tenant_sessionmaker(storage: TenantStorage) -> sessionmaker[Session]:
    """Return a session factory whose sessions read and write this tenant only."""
    return sessionmaker(bind=storage.orm_bind(), expire_on_commit=False)


@contextmanager
def tenant_session(storage: TenantStorage) -> Iterator[Session]:
    """Yield a session bound to the tenant; roll back what was not committed, then close."""
    session = tenant_sessionmaker(storage)()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
