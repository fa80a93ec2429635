"""Alembic revisions of the index schema (run by `etude.store.database.migrate`)."""
