"""Tenancy without a request: names, storage, registry, ledger, binding and migrations."""
