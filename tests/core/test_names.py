import pytest

from tenants.core.errors import InvalidTenantName
from tenants.core.names import lock_key, quote_ident, quoted_schema, schema_name, search_path_sql, validate_slug

BAD_SLUGS = [
    "", "Acme", "1acme", "acme-co", "a", "a" * 41, "public", "pg_toast", "x\"; drop schema public; --",
    "café", "acme\n", "information_schema", "control", " acme", "acme ", "_acme", None, 42,
]


@pytest.mark.parametrize("slug", BAD_SLUGS)
def test_bad_slugs_are_refused(slug):
    with pytest.raises(InvalidTenantName, match="invalid tenant name"):
        validate_slug(slug)


@pytest.mark.parametrize("slug", ["ab", "acme", "acme_co", "a1", "a" * 40, "z9_x"])
def test_good_slugs_pass(slug):
    assert validate_slug(slug) == slug


def test_schema_names_are_prefixed_and_quoted():
    assert schema_name("acme") == "tenant_acme"
    assert quoted_schema("acme") == '"tenant_acme"'
    assert search_path_sql("acme") == 'SET search_path TO "tenant_acme"'


@pytest.mark.parametrize("name", ['a"b', "A", "a b", "a;b", "", "x" * 64])
def test_quote_ident_refuses_anything_unchecked(name):
    with pytest.raises(InvalidTenantName):
        quote_ident(name)


def test_lock_keys_are_stable_signed_64_bit_and_distinct():
    assert lock_key("acme") == lock_key("acme")
    assert lock_key("acme") != lock_key("globex")
    assert -(2**63) <= lock_key("acme") < 2**63
