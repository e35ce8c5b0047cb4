"""403, 404 and 500 pages: inside the console's layout (with its navigation) for signed-in people."""

import logging

from flask import Flask, current_app, render_template
from flask_login import current_user
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

MESSAGES = {
    403: ("Forbidden", "You do not have the right to open this page."),
    404: ("Not found", "There is no such page."),
    405: ("Method not allowed", "This page cannot be used that way."),
    500: ("Something went wrong", "The error was logged; nothing was changed by the failed request."),
}


def render_error(error: HTTPException) -> tuple[str, int]:
    """Render an error page; the console's layout when someone is signed in, a plain page otherwise."""
    code = error.code if isinstance(error, HTTPException) and error.code in MESSAGES else 500
    title, message = MESSAGES[code]
    if current_user.is_authenticated:
        try:
            view = current_app.extensions["console_dashboard"]
            return view.render("admin/error.html", code=code, title=title, message=message), code
        except Exception:  # the layout itself failed (say, the control plane is down): the plain page
            log.exception("could not render the console's %s page", code)
    return render_template("error.html", code=code, title=title, message=message), code


def init_app(app: Flask) -> None:
    """Serve the error pages for `app`."""
    for code in (403, 404, 405):
        app.register_error_handler(code, render_error)
    app.register_error_handler(InternalServerError, render_error)
