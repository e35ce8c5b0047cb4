"""The landing page."""

from flask import Blueprint, Flask, render_template

bp = Blueprint("home", __name__)


@bp.route("/")
def index() -> str:
    """Lead to the console (tenant names are shown only after sign-in)."""
    return render_template("home.html")


def init_app(app: Flask) -> None:
    """Register the landing page."""
    app.register_blueprint(bp)
