"""A throw-away PostgreSQL schema, for tests and the scale-out benchmark.

Each user gets a fresh schema on the shared server (through the URL's
``search_path``), so parallel runs and leftovers never meet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from dispatch.store.engine import normalise_url


@contextmanager
def scratch_schema(base: str, prefix: str) -> Iterator[str]:
    """``base`` with its search_path on a new schema, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(base))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
