"""Moving tenants along the revision chain: the one Alembic driver, plans, replay, versions, units of work."""
