"""Tests of tenants/safety/."""
