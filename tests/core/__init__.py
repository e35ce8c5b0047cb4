"""Tests of tenants/core/."""
