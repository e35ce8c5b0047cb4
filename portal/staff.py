"""Staff accounts in the control plane: creating them, their grants, and the CLI commands for it."""

import os
import re
import sys

import click
from sqlalchemy import Engine, insert, select, update
from werkzeug.security import generate_password_hash

from portal.console_sessions import close_staff_sessions
from portal.errors import InvalidStaffInput, StaffExists
from portal.permissions import ACTIONS, CONTROL_MODELS, TENANT_MODELS, Grant
from tenants.cli.context import get_tenancy
from tenants.cli.exit_codes import fail, reports_errors
from tenants.core.clock import utcnow
from tenants.core.control_schema import staff, staff_grants
from tenants.core.names import validate_slug
from tenants.migrate.control import ensure_control

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
SUPERUSER_PASSWORD_ENV = "PORTAL_SUPERUSER_PASSWORD"
STAFF_PASSWORD_ENV = "PORTAL_STAFF_PASSWORD"


def upsert_staff(engine: Engine, email: str, password: str, *, full_name: str = "",
                 superuser: bool = False) -> int:
    """Create the staff account or reset its password; return its id."""
    email = email.strip().lower()
    values = {"password_hash": generate_password_hash(password), "active": True, "is_superuser": superuser}
    with engine.begin() as conn:
        found = conn.execute(select(staff.c.id).where(staff.c.email == email)).scalar()
        if found is not None:
            conn.execute(update(staff).where(staff.c.id == found).values(**values))
    if found is not None:
        close_staff_sessions(engine, found)  # a reset password ends every session of the account
        return found
    with engine.begin() as conn:
        return conn.execute(insert(staff).values(
            email=email, full_name=full_name, created_at=utcnow(), **values,
        )).inserted_primary_key[0]


def check_staff_input(email: str, password: str) -> str:
    """Return the normalised email, or raise InvalidStaffInput."""
    email = email.strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise InvalidStaffInput(f"{email!r} is not an email address")
    if len(password) < MIN_PASSWORD:
        raise InvalidStaffInput(f"the password must have at least {MIN_PASSWORD} characters")
    return email


def parse_grant(text: str) -> Grant:
    """Parse `TENANT:MODEL:ACTIONS` (TENANT `*` = every tenant), e.g. `acme:products:view,change`."""
    parts = text.split(":")
    if len(parts) != 3:
        raise InvalidStaffInput(f"grant {text!r} is not TENANT:MODEL:ACTIONS (e.g. acme:products:view,change)")
    tenant, model, actions = parts
    if model not in TENANT_MODELS + CONTROL_MODELS:
        raise InvalidStaffInput(f"unknown model {model!r}: use one of {', '.join(TENANT_MODELS + CONTROL_MODELS)}")
    wanted = {a.strip() for a in actions.split(",") if a.strip()}
    if not wanted or not wanted <= set(ACTIONS):
        raise InvalidStaffInput(f"grant actions {actions!r} must be among {', '.join(ACTIONS)}")
    slug = None if tenant == "*" else validate_slug(tenant)
    if model in CONTROL_MODELS and slug is not None:
        raise InvalidStaffInput(f"{model} is a control-plane model: grant it with tenant '*'")
    return Grant(slug, model, **{f"can_{a}": a in wanted for a in ACTIONS})


def create_staff(engine: Engine, email: str, password: str, *, full_name: str = "", superuser: bool = False,
                 grants: tuple[Grant, ...] = ()) -> int:
    """Create a staff account with its grants; raise StaffExists if the email is taken."""
    email = check_staff_input(email, password)
    with engine.begin() as conn:
        if conn.execute(select(staff.c.id).where(staff.c.email == email)).first() is not None:
            raise StaffExists(f"staff member {email} already exists")
        staff_id = conn.execute(insert(staff).values(
            email=email, full_name=full_name, password_hash=generate_password_hash(password), active=True,
            is_superuser=superuser, created_at=utcnow())).inserted_primary_key[0]
        for grant in grants:
            conn.execute(insert(staff_grants).values(staff_id=staff_id, **grant.__dict__))
    return staff_id


def _password(env_name: str) -> str:
    """Return the password from `env_name`, or ask on a terminal; refuse (exit 2) otherwise."""
    from_env = os.environ.get(env_name)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        fail(f"no terminal to ask for the password: set {env_name} for scripts", 2)
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _email(email: str | None) -> str:
    if email:
        return email
    if not sys.stdin.isatty():
        fail("no terminal to ask for the email: pass --email", 2)
    return click.prompt("Email")


@click.command("createsuperuser")
@click.option("--email", help="The superuser's email (asked on a terminal when missing).")
@click.option("--name", "full_name", default="", help="Full name.")
@reports_errors
def createsuperuser_command(email: str | None, full_name: str) -> None:
    """Create a console superuser; the password comes from PORTAL_SUPERUSER_PASSWORD or a prompt."""
    email = _email(email)
    password = _password(SUPERUSER_PASSWORD_ENV)
    tenancy = get_tenancy()
    ensure_control(tenancy)
    create_staff(tenancy.control_engine, email, password, full_name=full_name, superuser=True)
    click.echo(f"superuser {email.strip().lower()} created")


@click.command("create-staff")
@click.argument("email")
@click.option("--name", "full_name", default="", help="Full name.")
@click.option("--superuser", is_flag=True, help="Give every right on every tenant.")
@click.option("--grant", "grants", multiple=True, metavar="TENANT:MODEL:ACTIONS",
              help="A right, e.g. acme:products:view,change or '*:users:view' (repeatable).")
@reports_errors
def create_staff_command(email: str, full_name: str, superuser: bool, grants: tuple[str, ...]) -> None:
    """Create a staff account with grants; the password comes from PORTAL_STAFF_PASSWORD or a prompt."""
    parsed = tuple(parse_grant(g) for g in grants)  # bad input fails before anything is asked or written
    password = _password(STAFF_PASSWORD_ENV)
    tenancy = get_tenancy()
    ensure_control(tenancy)
    create_staff(tenancy.control_engine, email, password, full_name=full_name, superuser=superuser, grants=parsed)
    click.echo(f"staff member {email.strip().lower()} created with {len(parsed)} grant(s)")

