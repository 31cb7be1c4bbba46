"""Bounces, complaints and mailto unsubscribes (RFC 3464, RFC 5965, RFC 8058 mailto).

``verp`` signs the token naming an outbox row; ``classify`` (with ``dsn``,
``arf`` and ``nonstandard``) says what a report is; ``mailbox`` reads
maildir, IMAP and POP3; ``policy`` decides; ``history`` records each decision
with its evidence; ``process`` ties them together for ``dispatch bounces
process`` and the ``bounces`` stage of a pass; ``providers`` checks and maps
the provider webhooks served by ``web/webhooks.py``.

Imports stay lazy: ``dispatch.bounces.verp`` is imported by delivery on
every send and must not pull in the rest.
"""
