"""The signed-in person's own account: changing one's password (staff and tenant administrators alike)."""

from typing import Any

from flask import abort, current_app, flash, redirect, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from limits import parse
from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from portal import audit
from portal.admin.base import SecureView
from portal.auth import start_session
from portal.console_sessions import close_staff_sessions, close_tenant_user_sessions
from portal.models import User
from portal.principals import Account
from tenants.core.binding import tenant_session
from tenants.core.control_schema import staff

WRONG_PASSWORD = "Your current password is not right."


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
    new = PasswordField("New password", validators=[
        DataRequired(), Length(min=8, max=1024, message="The new password needs at least 8 characters.")])
    confirm = PasswordField("New password again", validators=[
        DataRequired(), EqualTo("new", message="The new passwords do not match.")])


def _count_attempt() -> None:
    """Guessing the current password from a stolen session is throttled like signing in."""
    config = current_app.config
    strategy = current_app.extensions["console_limiter"].limiter
    key = f"{current_user.kind}:{current_user.tenant_slug or ''}:{current_user.id}"
    if not strategy.hit(parse(config["PORTAL_LOGIN_ACCOUNT_LIMIT"]), config["RATELIMIT_KEY_PREFIX"],
                        "password-change", key):
        abort(429)


def change_staff_password(current: str, new: str) -> Account | None:
    """Set the signed-in staff member's password; end every session of the account; None if `current` is wrong."""
    engine = current_app.extensions["tenancy"].control_engine
    with engine.connect() as conn:
        row = conn.execute(select(staff.c.password_hash, staff.c.account_key)
                           .where(staff.c.id == current_user.id)).one()
    if not check_password_hash(row.password_hash, current):
        return None
    with engine.begin() as conn:
        conn.execute(update(staff).where(staff.c.id == current_user.id)
                     .values(password_hash=generate_password_hash(new)))
    close_staff_sessions(engine, current_user.id)
    audit.record(engine, current_user, None, "staff", current_user.id, current_user.email, "change",
                 {"password": [audit.SECRET_MARK, audit.SECRET_MARK]})
    return Account(current_user.id, row.account_key)


def change_tenant_password(current: str, new: str) -> Account | None:
    """Set the signed-in tenant administrator's password; end every session of theirs; None if `current` is wrong."""
    tenancy = current_app.extensions["tenancy"]
    slug = current_user.tenant_slug
    with tenant_session(tenancy.storage(slug)) as session:
        user = session.get(User, current_user.id)
        if user is None or not user.check_password(current):
            return None
        user.set_password(new)
        session.commit()
    close_tenant_user_sessions(tenancy.control_engine, slug, current_user.id)
    audit.record(tenancy.control_engine, current_user, slug, "users", current_user.id, current_user.email, "change",
                 {"password": [audit.SECRET_MARK, audit.SECRET_MARK]})
    return Account(current_user.id, current_user.tenant_key)


class AccountView(SecureView, BaseView):
    """The signed-in person's own account (reached from the navigation bar, not the menu)."""

    def is_accessible(self) -> bool:
        return current_user.is_authenticated

    def is_visible(self) -> bool:
        return False

    @expose("/")
    def index(self) -> Any:
        return redirect(url_for(".password"))

    @expose("/password/", methods=["GET", "POST"])
    def password(self) -> Any:
        form = PasswordForm()
        error = None
        if form.validate_on_submit():
            _count_attempt()
            change = change_staff_password if current_user.kind == "staff" else change_tenant_password
            kind, slug = current_user.kind, current_user.tenant_slug
            account = change(form.current.data, form.new.data)
            if account is not None:
                start_session(kind, account, slug, remember=False)  # this browser stays signed in, afresh
                flash("Your password was changed. Every other session of your account was signed out.", "success")
                return redirect(url_for("admin.index"))
            error = WRONG_PASSWORD
        return self.render("admin/password.html", form=form, error=error)
