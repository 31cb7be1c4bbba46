"""DKIM signing of outgoing mail (RFC 6376, Ed25519 per RFC 8463).

Modules by job::

    options   ``[dkim]`` in dispatch.toml (never the key itself)
    keys      the private key(s) from the environment, key generation, TXT records
    sign      :class:`Signer`: one DKIM-Signature per algorithm on a message's final bytes
    verify    offline verification against a given TXT record (``dispatch dkim verify``)
    status    what ``dispatch check`` reports: configured, key parses, DMARC alignment
"""
