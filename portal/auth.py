"""Signing in and out of the console (Flask-Login), with throttling and safe redirects.

The throttle counts an attempt before its password is checked (a counter in the limiter's
storage, taken atomically), so simultaneous guesses cannot all be checked against a limit
they have not yet counted toward. A successful sign-in clears its account's count.
"""

import os
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from limits import parse
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from portal.console_sessions import close_session, open_session
from portal.extensions import login_manager
from portal.principals import Account, authenticate_staff, authenticate_tenant_admin, load_principal
from tenants.core.tenancy import Tenancy

FAILED_LOGIN = "Invalid email or password."  # the same words whether or not the account exists
THROTTLED = "Too many failed sign-in attempts. Wait a few minutes and try again."


class LoginForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    tenant = StringField("Tenant (tenant administrators only)", validators=[Length(max=40)])
    remember = BooleanField("Remember me")
    next = HiddenField()


def safe_next(target: str | None) -> str | None:
    """Return `target` when it is a path on this site, else None (no open redirects)."""
    if not target:
        return None
    target = target.strip()
    if any(ord(ch) < 32 or ch == "\\" for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def login_url_for_here() -> str:
    """Return the login URL that comes back to the current page afterwards."""
    here = request.full_path.rstrip("?") if request.method == "GET" else None
    return url_for("auth.login", next=here)


def _tenancy() -> Tenancy:
    return current_app.extensions["tenancy"]


# Settings an operator sets in the environment (the app's own config, e.g. a test's, wins).
THROTTLE_SETTINGS = {
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_KEY_PREFIX": "portal",
    "PORTAL_LOGIN_ACCOUNT_LIMIT": "5 per 15 minutes",
    "PORTAL_LOGIN_CLIENT_LIMIT": "20 per 15 minutes",
}


def _account_key(form: "LoginForm") -> str:
    tenant = (form.tenant.data or "").strip().lower()[:40]
    return f"{tenant}:{(form.email.data or '').strip().lower()[:254]}"


def _throttle_keys(form: "LoginForm") -> list[tuple[str, str, str, str]]:
    config = current_app.config
    prefix = config["RATELIMIT_KEY_PREFIX"]  # several portals (or test runs) may share one Redis
    return [(config["PORTAL_LOGIN_ACCOUNT_LIMIT"], prefix, "login-account", _account_key(form)),
            (config["PORTAL_LOGIN_CLIENT_LIMIT"], prefix, "login-client", get_remote_address())]


def count_attempt(form: "LoginForm") -> None:
    """Count a sign-in attempt against the account and client limits; 429 when either is spent."""
    strategy = current_app.extensions["console_limiter"].limiter
    for limit, *identifiers in _throttle_keys(form):
        if not strategy.hit(parse(limit), *identifiers):
            abort(429)


def clear_account_attempts(form: "LoginForm") -> None:
    """Forget an account's counted attempts once it signed in (the client's count stays)."""
    limit, *identifiers = _throttle_keys(form)[0]
    current_app.extensions["console_limiter"].limiter.clear(parse(limit), *identifiers)


def start_session(kind: str, account: Account, tenant_slug: str | None, remember: bool) -> None:
    """Sign a principal in with a brand-new session token (the old session is ended)."""
    tenancy = _tenancy()
    old = session.get("_user_id")
    if old:
        close_session(tenancy.control_engine, old)
    session.clear()  # nothing from before sign-in survives into the new session
    config = current_app.config
    lifetime = config["REMEMBER_COOKIE_DURATION"] if remember else config["PORTAL_SESSION_LIFETIME"]
    token = open_session(tenancy.control_engine, kind, lifetime, account.key,
                         staff_id=account.id if kind == "staff" else None,
                         tenant_slug=tenant_slug, user_id=account.id if kind == "tenant" else None)
    principal = load_principal(tenancy, token)
    login_user(principal, remember=remember, duration=config["REMEMBER_COOKIE_DURATION"])


def login() -> str | Response | tuple[str, int]:
    """Show the sign-in form and sign in staff or tenant administrators."""
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        if current_user.is_authenticated:
            return redirect(safe_next(form.next.data) or url_for("admin.index"))
        form.tenant.data = request.args.get("tenant", "")
    error = None
    if form.validate_on_submit():
        count_attempt(form)  # before the password is checked: concurrent guesses are counted too
        tenant = (form.tenant.data or "").strip().lower()
        if tenant:
            account = authenticate_tenant_admin(_tenancy(), tenant, form.email.data, form.password.data)
        else:
            account = authenticate_staff(_tenancy().control_engine, form.email.data, form.password.data)
        if account is not None:
            clear_account_attempts(form)
            start_session("tenant" if tenant else "staff", account, tenant or None, bool(form.remember.data))
            default = url_for("tenant_home.index", tenant=tenant) if tenant else url_for("admin.index")
            return redirect(safe_next(form.next.data) or default)
        error = FAILED_LOGIN
    elif request.method == "POST":
        error = FAILED_LOGIN
    return render_template("auth/login.html", form=form, error=error), 200


@login_required
def logout() -> Response:
    """End the session everywhere (server row, cookie, remember cookie)."""
    close_session(_tenancy().control_engine, current_user.get_id())
    logout_user()
    session.clear()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))


def too_many_attempts(error: Exception) -> tuple[str, int]:
    """Explain a throttled sign-in on the sign-in page itself."""
    form = LoginForm(formdata=None)
    return render_template("auth/login.html", form=form, error=THROTTLED), 429


def init_app(app: Flask) -> None:
    """Wire Flask-Login, the sign-in throttle and the sign-in pages into `app`."""
    app.config.setdefault("PORTAL_SESSION_LIFETIME", timedelta(hours=12))
    app.config.setdefault("REMEMBER_COOKIE_DURATION", timedelta(days=14))
    for name, default in THROTTLE_SETTINGS.items():
        app.config.setdefault(name, os.environ.get(name) or default)
    login_manager.login_view = "auth.login"
    login_manager.user_loader(lambda token: load_principal(current_app.extensions["tenancy"], token))

    # One limiter per app (its storage is per app too), so test apps never share counters; its
    # storage and strategy count the attempts, it limits no route by itself.
    limiter = Limiter(get_remote_address, app=app, storage_uri=app.config["RATELIMIT_STORAGE_URI"],
                      key_prefix=app.config["RATELIMIT_KEY_PREFIX"], strategy="moving-window")
    app.extensions["console_limiter"] = limiter
    bp = Blueprint("auth", __name__)
    bp.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    bp.add_url_rule("/logout", "logout", logout, methods=["POST"])
    app.register_blueprint(bp)
    app.register_error_handler(429, too_many_attempts)
