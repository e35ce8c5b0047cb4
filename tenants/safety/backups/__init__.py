"""Tenant backups: take, record, list, restore and prune them (PostgreSQL and SQLite)."""
