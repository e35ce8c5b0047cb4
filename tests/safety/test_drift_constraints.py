"""Drift sees what a fixed-up revision changed under the same revision id: server defaults, CHECK and UNIQUE
constraints, and indexes.

Each case: one chain's 0004 was applied to the tenant, and a later edit of the same 0004 (as the seed
tutorials teach after a failed run) is the chain check-tenants now compares with.
"""

from dataclasses import replace

import pytest

from tenants.core.tenancy import Tenancy
from tenants.fleet.create import create_tenant
from tenants.safety.drift import check_drift
from tests.chains import add_revision, copy_chain

WEIGHT = "sa.Column('weight', sa.Integer(), nullable=False{})"
CASES = {
    "server-default": (
        "with op.batch_alter_table('products') as b:\n    b.add_column(" + WEIGHT.format(", server_default='0'") + ")",
        "with op.batch_alter_table('products') as b:\n    b.add_column(" + WEIGHT.format(", server_default='7'") + ")",
    ),
    "check-constraint": (
        "with op.batch_alter_table('products') as b:\n    b.create_check_constraint('stock_small', 'stock < 1000')",
        "with op.batch_alter_table('products') as b:\n    b.create_check_constraint('stock_small', 'stock < 5000')",
    ),
    "unique-constraint": (
        "with op.batch_alter_table('products') as b:\n    b.create_unique_constraint('uq_products_name', ['name'])",
        "pass",
    ),
    "index": (
        "op.create_index('ix_products_stock', 'products', ['stock'])",
        "op.create_index('ix_products_stock', 'products', ['stock', 'name'])",
    ),
}


def chain(tmp_path, name: str, body: str):  # type: ignore[no-untyped-def]
    path = copy_chain(tmp_path, name)
    add_revision(path, "0004", "0003", body)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_revision_edited_after_it_ran_shows_as_drift(settings, tmp_path, case):
    applied, edited = CASES[case]
    first = Tenancy(replace(settings, revision_dir=chain(tmp_path, "applied", applied)))
    create_tenant(first, "acme")
    first.close()
    now = Tenancy(replace(settings, revision_dir=chain(tmp_path, "edited", edited)))
    create_tenant(now, "globex")  # globex ran the edited 0004: it matches the chain
    reports = {r.slug: r for r in check_drift(now)}
    assert not reports["globex"].drifted, reports["globex"].differences
    acme = reports["acme"]
    assert acme.revision == "0004" and acme.drifted, case
    kinds = {d.kind for d in acme.differences}
    expected = {"server-default": {"server-default"}, "check-constraint": {"check-constraint"},
                "unique-constraint": {"extra-constraint", "extra-index"}, "index": {"extra-index", "missing-index"}}
    assert kinds & expected[case], (case, acme.differences)
    now.close()
