"""The landing page."""

from flask import Blueprint, Flask, current_app, render_template

bp = Blueprint("home", __name__)


@bp.route("/")
def index() -> str:
    """List the tenants."""
    tenancy = current_app.extensions["tenancy"]
    return render_template("home.html", tenants=tenancy.registry.all())


def init_app(app: Flask) -> None:
    """Register the landing page."""
    app.register_blueprint(bp)
