"""Tests of tenants/fleet/."""
