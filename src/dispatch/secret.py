"""The site's secret key (``DISPATCH_SECRET_KEY``): it signs unsubscribe links
and signup tokens and keys the hashes of erased addresses.

Its own module, low in the layers, because every part that signs or hashes
needs it and none of them should import another's module to get it
(:mod:`dispatch.unsubscribe` re-exports it under its old name).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from functools import lru_cache

from dispatch.config import Settings

SECRET_ENV = "DISPATCH_SECRET_KEY"
log = logging.getLogger("dispatch.unsubscribe")  # where operators have always seen it


@lru_cache(maxsize=16)
def _keyed(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key``. Sending signs several links
    per message with one key, so the key's HMAC state is made once and
    copied for each message (the copy leaves the cached state untouched, so
    threads can share it)."""
    keyed = _keyed(key).copy()
    keyed.update(message)
    return keyed.digest()


def secret_key(settings: Settings, environ: Mapping[str, str] | None = None) -> bytes:
    env = os.environ if environ is None else environ
    value = env.get(SECRET_ENV, "")
    if value:
        return value.encode("utf-8")
    path = settings.state_dir / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32), encoding="ascii")
        tmp.chmod(0o600)
        os.replace(tmp, path)
        # Said once, when the key is made; `dispatch check` and `dispatch
        # serve` say it again (unsubscribe.secret_key_note), every other
        # command is quiet.
        log.warning("%s is not set: unsubscribe links are signed with the development "
                    "key in %s; set %s in production so links keep working",
                    SECRET_ENV, path, SECRET_ENV, extra={"label": "note"})
    return path.read_text(encoding="ascii").strip().encode("ascii")
