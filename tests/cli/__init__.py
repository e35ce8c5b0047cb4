"""Tests of tenants/cli/."""
