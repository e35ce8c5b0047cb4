"""Errors the web app's own commands raise, under tenancy's one hierarchy (so the CLI's exit-code table applies)."""

from tenants.core.errors import InvalidUsage


class InvalidStaffInput(InvalidUsage):
    """An email, password or grant given for a staff account is not acceptable."""


class StaffExists(InvalidUsage):
    """A staff account with this email already exists."""
