"""Recognising an erased address (``dispatch subscribers forget``).

What is kept of an erased address is an HMAC of its identity keyed with the
site's secret (``suppressions``); imports ask :func:`erased_check` whether a
row's address is one of them. Here, below both the importer and
:mod:`dispatch.signup.forget` (which erases), so the subscriber stage needs
nothing from the signup package.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from sqlalchemy import select

from dispatch.store.address_identity import key_of
from dispatch.store.engine import Store
from dispatch.store.schema import suppressions


def identity_of(email: str) -> str:
    """Who an address is: two spellings with one identity are one person."""
    return key_of(email)


def erasure_hash(key: bytes, identity: str) -> str:
    return hmac.new(key, f"erased:{identity}".encode(), hashlib.sha256).hexdigest()


def erased_check(store: Store, key: bytes) -> Callable[[str], bool] | None:
    """For imports: a test "was this address forgotten?", or None when nothing
    ever was (then an import pays nothing for it)."""
    with store.read() as conn:
        hashes = set(conn.execute(select(suppressions.c.address_hash)).scalars())
    if not hashes:
        return None
    return lambda email: erasure_hash(key, identity_of(email)) in hashes


ERASED_MESSAGE = ("this address was erased at its owner's request (dispatch subscribers "
                  "forget); only a signup confirmed through the form can bring it back")
