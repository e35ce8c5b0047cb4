"""The web app: create_app() wires config, extensions, tenancy and the console."""

from pathlib import Path

from flask import Flask

from tenants.settings import PROJECT_ROOT


def create_app(config_class: type | None = None, overrides: dict | None = None) -> Flask:
    """Build the Flask app; never migrates anything (upgrading is an operator step)."""
    from portal.config import config_from_env, resolve_secret_key, tenant_settings
    from portal.extensions import csrf, db, login_manager, migrate
    from tenants.engines import driver_url
    from tenants.runtime import Tenancy

    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"))
    app.config.from_object(config_class or config_from_env())
    app.config.update(overrides or {})
    settings = tenant_settings(app.config)
    instance = Path(app.config.get("INSTANCE_PATH") or settings.tenant_dir.parent)
    app.instance_path = str(instance)
    app.config["SECRET_KEY"] = resolve_secret_key(app.config, instance)
    app.config["SQLALCHEMY_DATABASE_URI"] = driver_url(settings.control_url)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(settings.revision_dir))
    login_manager.init_app(app)
    csrf.init_app(app)
    app.extensions["tenancy"] = Tenancy(settings)

    from portal import admin, auth, demo, home, security_headers, tenancy_request

    demo.init_app(app)
    home.init_app(app)
    security_headers.init_app(app)
    auth.init_app(app)
    tenancy_request.init_app(app)
    admin.init_app(app)
    return app
