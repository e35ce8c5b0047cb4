"""Tests of tenants/migrate/."""
