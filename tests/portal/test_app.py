"""The app factory, its configuration, and the demo command."""

import pytest
from sqlalchemy import func, select

from portal import create_app
from portal.config import ProductionConfig, TestConfig
from portal.demo import DEMO_TENANTS, demo_command, load_demo
from portal.models import Product
from tenants.core.binding import tenant_session
from tenants.core.control_schema import staff


def test_development_secret_key_is_made_once_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    overrides = {"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'c.sqlite3'}"}
    first = create_app(TestConfig, overrides)
    second = create_app(TestConfig, overrides)
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_production_refuses_to_start_without_a_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(ProductionConfig, {"INSTANCE_PATH": str(tmp_path)})


def test_production_cookies_are_secure(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    app = create_app(ProductionConfig, {"INSTANCE_PATH": str(tmp_path)})
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_HTTPONLY"]
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_creating_the_app_migrates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    app = create_app(TestConfig, {"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": url})
    assert not (tmp_path / "c.sqlite3").exists() or (tmp_path / "c.sqlite3").stat().st_size == 0
    assert app.extensions["tenancy"].settings.control_url.endswith("c.sqlite3")


def test_demo_is_idempotent_and_prints_a_working_login(app):
    tenancy = app.extensions["tenancy"]
    first = load_demo(tenancy)
    second = load_demo(tenancy)
    assert first != second  # a fresh password each time, printed by the command
    assert [t.slug for t in tenancy.registry.all()] == sorted(DEMO_TENANTS)
    with tenant_session(tenancy.storage("acme")) as session:
        assert session.scalar(select(func.count()).select_from(Product)) == len(DEMO_TENANTS["acme"][1])
    with tenancy.control_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(staff)).scalar() == 1


def test_demo_command_prints_the_login(app):
    result = app.test_cli_runner().invoke(demo_command)
    assert result.exit_code == 0, result.output
    assert "Staff login: admin@example.com / " in result.output
