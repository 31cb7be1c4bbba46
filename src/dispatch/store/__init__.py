"""The state store: one schema on SQLite (embedded default) or PostgreSQL."""

from dispatch.store.engine import Store, open_store

__all__ = ["Store", "open_store"]
