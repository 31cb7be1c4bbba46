"""What ``dispatch check`` says about DKIM: configured or not, whether the
key parses, and whether the signing domain aligns with the From domain.

DMARC passes on DKIM only when the signature's d= domain is aligned with
the From: domain; in the default relaxed mode that means both have the same
organisational domain (the registrable name just under a public suffix:
``news.example.co.uk`` and ``example.co.uk`` align, ``example.org`` and
``example.com`` do not). The Public Suffix List comes with ``publicsuffixlist``,
so no network is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from dispatch.config import Settings
from dispatch.dkim.keys import DkimKeyError
from dispatch.dkim.sign import configured, load_signer, signing_domain
from dispatch.errors import Problem, Severity


@cache
def _suffixes() -> Any:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    domain = domain.lower().rstrip(".")
    found = _suffixes().privatesuffix(domain)
    return str(found) if found else domain


def aligned(signing: str, from_domain: str) -> bool:
    """Relaxed DMARC alignment (RFC 7489 3.1.1)."""
    return organisational_domain(signing) == organisational_domain(from_domain)


def dkim_status(settings: Settings, environ: Mapping[str, str]) -> tuple[str, list[Problem]]:
    """One line for the terminal, and the problems to report with the others."""
    options = configured(settings)
    if options is None:
        return ("dkim: signing off (no [dkim] section); large mailbox providers "
                "reject bulk mail without a DKIM signature", [])
    try:
        signer = load_signer(settings, environ)
    except DkimKeyError as exc:
        return "dkim: configured, but the key cannot be used", list(exc.problems)
    assert signer is not None
    problems: list[Problem] = []
    from_domain = settings.sender.email.rpartition("@")[2].lower()
    domain = signing_domain(settings, options)
    if not aligned(domain, from_domain):
        problems.append(Problem(
            "dispatch.toml", f"signing domain {domain} does not align with the From domain "
            f"{from_domain} ({organisational_domain(domain)} ≠ "
            f"{organisational_domain(from_domain)}): DMARC will not pass on DKIM",
            settings.line_of("dkim.domain") or settings.line_of("dkim"), "dkim.domain",
            f"{from_domain} or a subdomain of {organisational_domain(from_domain)}",
            Severity.WARNING))
    for key in signer.keys:
        if key.algorithm == "rsa-sha256" and key.bits < 2048:
            problems.append(Problem("dkim key", f"the RSA key has {key.bits} bits", None, None,
                                    "2048 bits (receivers distrust shorter keys)",
                                    Severity.WARNING))
    keys = ", ".join(f"{k.algorithm} ({k.bits}-bit) as {signer.selectors[k.algorithm]}."
                     f"_domainkey.{domain}" for k in signer.keys)
    alignment = "aligned with" if aligned(domain, from_domain) else "NOT aligned with"
    return f"dkim: signing with {keys}; key parses; d={domain} {alignment} From {from_domain}", \
        problems
