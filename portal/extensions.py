"""Flask extensions, created unbound and bound in create_app()."""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from tenants.core.control_schema import metadata as control_metadata

# Flask-SQLAlchemy serves the control plane only; tenant sessions come from tenants.core.binding.
db = SQLAlchemy(metadata=control_metadata)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
