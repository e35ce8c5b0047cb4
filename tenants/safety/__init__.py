"""Migration safety: the lint, the gate, backups and drift."""
