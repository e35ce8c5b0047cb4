"""Configuration classes; environment-dependent values are read when the app is built."""

import os
import secrets
from dataclasses import replace
from pathlib import Path

from tenants.core.settings import PROJECT_ROOT, TenantSettings


def instance_secret_key(instance_path: Path) -> str:
    """Return the development secret key kept in the instance folder, making it once."""
    path = instance_path / "secret_key"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


class Config:
    """Local development over plain http (the default)."""

    PORTAL_ENV = "development"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = False


class ProductionConfig(Config):
    """Behind TLS: Secure cookies, and SECRET_KEY must come from the environment."""

    PORTAL_ENV = "production"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True


class TestConfig(Config):
    """The test suite; tests pass DATABASE_URL and INSTANCE_PATH as overrides."""

    TESTING = True


def config_from_env() -> type[Config]:
    """Pick the config class named by PORTAL_ENV (development or production)."""
    return ProductionConfig if os.environ.get("PORTAL_ENV") == "production" else Config


def resolve_secret_key(config: dict, instance_path: Path) -> str:
    """Return SECRET_KEY from config or environment; development keeps one in instance/."""
    key = config.get("SECRET_KEY") or os.environ.get("SECRET_KEY")
    if key:
        return key
    if config.get("PORTAL_ENV") == "production":
        raise RuntimeError("SECRET_KEY is not set: production needs it in the environment")
    return instance_secret_key(instance_path)


def tenant_settings(config: dict) -> TenantSettings:
    """Build the tenancy settings from the environment, with the app's overrides on top."""
    instance = Path(config.get("INSTANCE_PATH") or os.environ.get("PORTAL_INSTANCE_PATH") or PROJECT_ROOT / "instance")
    settings = TenantSettings.from_env(instance)
    if config.get("DATABASE_URL"):
        settings = replace(settings, control_url=config["DATABASE_URL"])
    if config.get("PORTAL_TENANT_DIR"):
        settings = replace(settings, tenant_dir=Path(config["PORTAL_TENANT_DIR"]))
    return settings
