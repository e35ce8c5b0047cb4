"""The web app: create_app() wires config, extensions, tenancy and the console."""

from pathlib import Path

from flask import Flask

from tenants.core.settings import PROJECT_ROOT


def create_app(config_class: type | None = None, overrides: dict | None = None) -> Flask:
    """Build the Flask app; never migrates anything (upgrading is an operator step)."""
    from portal.config import config_from_env, resolve_secret_key, tenant_settings
    from portal.extensions import csrf, db, login_manager, migrate
    from tenants.core.engines import configure_engine, driver_url, engine_options
    from tenants.core.tenancy import Tenancy

    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"))
    app.config.from_object(config_class or config_from_env())
    app.config.update(overrides or {})
    settings = tenant_settings(app.config)
    instance = Path(app.config.get("INSTANCE_PATH") or settings.tenant_dir.parent)
    app.instance_path = str(instance)
    app.config["SECRET_KEY"] = resolve_secret_key(app.config, instance)
    app.config["SQLALCHEMY_DATABASE_URI"] = driver_url(settings.control_url)
    # The control plane's one connection policy (tenants.core.engines), for Flask-SQLAlchemy's engine too.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(settings.control_url)

    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine, explicit_begin=False)
    migrate.init_app(app, db, directory=str(settings.revision_dir))
    login_manager.init_app(app)
    csrf.init_app(app)
    app.extensions["tenancy"] = Tenancy(settings)

    from portal import admin, auth, error_pages, home, quarantine, security_headers, tenancy_request

    home.init_app(app)
    security_headers.init_app(app)
    auth.init_app(app)
    tenancy_request.init_app(app)
    quarantine.init_app(app)
    admin.init_app(app)
    error_pages.init_app(app)
    return app
