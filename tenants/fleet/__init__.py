"""The fleet runner: one per-tenant unit of work over many tenants, its lock, report and servers."""
