"""The tenant of a staff grant: Flask-Admin's select2 ajax field over a search, not a select of every tenant.

A select listing every registered tenant costs its page (and each inline grant row) one option
per tenant: 2,000 options at 2,000 tenants. The field is a hidden input that Flask-Admin's own
form.js turns into its select2 ajax widget (`data-role="select2-ajax"`, as its ajax model
loaders), fed by StaffView's `grant-tenants/` search; without JavaScript it is a text field. The
value is still checked on save: `*` (every tenant) or a registered tenant, anything else refused.
"""

import json
from typing import Any

from flask import current_app, url_for
from markupsafe import Markup
from wtforms import StringField
from wtforms.validators import ValidationError
from wtforms.widgets import html_params

EVERY_TENANT = "*"
EVERY_TENANT_LABEL = "* (every tenant)"


def grant_tenant(value: Any) -> str | None:
    """Coerce the form's tenant to the stored one: `*` (or nothing) is NULL, every tenant."""
    return None if value in (None, "", EVERY_TENANT) else str(value).strip()


class GrantTenantWidget:
    """A text input that form.js makes a select2 ajax search (the page holds the chosen tenant only)."""

    def __call__(self, field: "GrantTenantField", **kwargs: Any) -> Markup:
        value = field._value()
        kwargs.setdefault("id", field.id)
        kwargs.update({"data-role": "select2-ajax", "data-url": url_for("staff.grant_tenants"),
                       "data-json": json.dumps([value, EVERY_TENANT_LABEL if value == EVERY_TENANT else value]),
                       "data-placeholder": "Choose a tenant", "data-minimum-input-length": "0",
                       "data-separator": ",", "value": value})
        return Markup(f'<input type="text" {html_params(name=field.name, **kwargs)}>')


class GrantTenantField(StringField):
    """`*` or a registered tenant's slug, stored as NULL or the slug."""

    widget = GrantTenantWidget()

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = grant_tenant(valuelist[0]) if valuelist else None

    def _value(self) -> str:
        return EVERY_TENANT if self.data is None else str(self.data)

    def pre_validate(self, form: Any) -> None:
        if self.data is not None and current_app.extensions["tenancy"].registry.find(self.data) is None:
            raise ValidationError("Not a valid choice.")
