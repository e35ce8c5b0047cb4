"""Names, errors, settings, engines, storage, registry and ledger: what every other package stands on."""
