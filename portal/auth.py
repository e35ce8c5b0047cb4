"""Signing in and out of the console (Flask-Login), with throttling and safe redirects."""

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
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


def _account_key() -> str:
    tenant = request.form.get("tenant", "").strip().lower()[:40]
    return f"account:{tenant}:{request.form.get('email', '').strip().lower()[:254]}"


def _failed(response: Response) -> bool:
    # Only failed attempts count against the limits; a successful sign-in redirects.
    return response.status_code != 302


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
        tenant = (form.tenant.data or "").strip().lower()
        if tenant:
            account = authenticate_tenant_admin(_tenancy(), tenant, form.email.data, form.password.data)
        else:
            account = authenticate_staff(_tenancy().control_engine, form.email.data, form.password.data)
        if account is not None:
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
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    app.config.setdefault("PORTAL_LOGIN_ACCOUNT_LIMIT", "5 per 15 minutes")
    app.config.setdefault("PORTAL_LOGIN_CLIENT_LIMIT", "20 per 15 minutes")
    login_manager.login_view = "auth.login"
    login_manager.user_loader(lambda token: load_principal(current_app.extensions["tenancy"], token))

    # One limiter per app (its storage is per app too), so test apps never share counters.
    limiter = Limiter(get_remote_address, app=app, storage_uri=app.config["RATELIMIT_STORAGE_URI"])
    app.extensions["console_limiter"] = limiter
    throttled_login = limiter.limit(lambda: current_app.config["PORTAL_LOGIN_ACCOUNT_LIMIT"], key_func=_account_key,
                                    methods=["POST"], deduct_when=_failed, error_message=THROTTLED)(
        limiter.limit(lambda: current_app.config["PORTAL_LOGIN_CLIENT_LIMIT"], methods=["POST"],
                      deduct_when=_failed, error_message=THROTTLED)(login))
    bp = Blueprint("auth", __name__)
    bp.add_url_rule("/login", "login", throttled_login, methods=["GET", "POST"])
    bp.add_url_rule("/logout", "logout", logout, methods=["POST"])
    app.register_blueprint(bp)
    app.register_error_handler(429, too_many_attempts)
