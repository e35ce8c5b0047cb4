"""Staff accounts in the control plane: creating them and setting their passwords."""

from sqlalchemy import Engine, insert, select, update
from werkzeug.security import generate_password_hash

from tenants.control_schema import staff
from tenants.registry import utcnow


def upsert_staff(engine: Engine, email: str, password: str, *, full_name: str = "",
                 superuser: bool = False) -> int:
    """Create the staff account or reset its password; return its id."""
    email = email.strip().lower()
    values = {"password_hash": generate_password_hash(password), "active": True, "is_superuser": superuser}
    with engine.begin() as conn:
        found = conn.execute(select(staff.c.id).where(staff.c.email == email)).scalar()
        if found is not None:
            conn.execute(update(staff).where(staff.c.id == found).values(**values))
            return found
        return conn.execute(insert(staff).values(
            email=email, full_name=full_name, created_at=utcnow(), **values,
        )).inserted_primary_key[0]
