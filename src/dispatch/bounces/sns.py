"""Amazon SNS message signatures, as AWS documents them.

An SNS HTTP(S) delivery is a JSON document signed with the private key of
the certificate at ``SigningCertURL``. We check, in this order: the
certificate URL is https, on a host the allow-list names
(``sns.<region>.amazonaws.com`` by default; ``*`` matches one DNS label) and
ends in ``.pem``; the certificate is currently valid; the signature
(``SignatureVersion`` 1: SHA1withRSA, 2: SHA256withRSA) verifies over the
canonical string of the message's fields. A SubscriptionConfirmation is
confirmed by fetching its ``SubscribeURL`` only after the same checks, and
only on an allowed host.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

Fetch = Callable[[str], bytes]

_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                      "Type")


class SnsRejected(ValueError):
    """Why an SNS message is not accepted (shown in the 4xx answer)."""


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    kind = message.get("Type")
    keys = _NOTIFICATION_KEYS if kind == "Notification" else _CONFIRMATION_KEYS
    parts: list[str] = []
    for key in keys:
        if key == "Subject" and key not in message:
            continue  # a notification without a subject leaves it out entirely
        value = message.get(key)
        if not isinstance(value, str):
            raise SnsRejected(f"missing {key}")
        parts.append(f"{key}\n{value}\n")
    return "".join(parts).encode("utf-8")


def host_allowed(url: str, hosts: Sequence[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return False
    for pattern in hosts:
        # One "*" is one DNS label: sns.*.amazonaws.com never matches
        # sns.evil.example.com.amazonaws.com.attacker.net.
        labels, wanted = host.split("."), pattern.lower().split(".")
        if len(labels) == len(wanted) and all(
                fnmatch.fnmatchcase(label, part) and (part == "*" or "*" not in part)
                for label, part in zip(labels, wanted, strict=True)):
            return True
    return False


class CertificateCache:
    """Signing certificates by URL; SNS signs with a handful per region."""

    def __init__(self, fetch: Fetch) -> None:
        self.fetch = fetch
        self.found: dict[str, x509.Certificate] = {}
        self.lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate:
        with self.lock:
            cert = self.found.get(url)
        if cert is None:
            try:
                cert = x509.load_pem_x509_certificate(self.fetch(url))
            except ValueError as exc:
                raise SnsRejected(f"the signing certificate cannot be read: {exc}") from None
            with self.lock:
                self.found[url] = cert
        return cert


def verify(message: Mapping[str, Any], hosts: Sequence[str], certs: CertificateCache,
           now: datetime) -> None:
    """Raise :class:`SnsRejected` unless ``message`` is signed by SNS."""
    url = message.get("SigningCertURL") or message.get("SigningCertUrl")
    if not isinstance(url, str) or not host_allowed(url, hosts) or not urlsplit(
            url).path.endswith(".pem"):
        raise SnsRejected("the signing certificate URL is not on an allowed host")
    version = str(message.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # SNS SignatureVersion 1 is SHA1withRSA
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise SnsRejected(f"unknown SignatureVersion {version!r}")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise SnsRejected("the signature is not base64") from None
    cert = certs.get(url)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise SnsRejected("the signing certificate is not valid now")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsRejected("the signing certificate has no RSA key")
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise SnsRejected("the signature does not verify") from None
