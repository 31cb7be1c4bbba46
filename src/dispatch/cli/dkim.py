"""``dispatch dkim keygen`` and ``dispatch dkim verify``."""

from __future__ import annotations

from pathlib import Path

import click

from dispatch.cli.base import Site, console, site_command
from dispatch.errors import InputError, Problem


@click.group()
def dkim() -> None:
    """DKIM keys: make one, and check a message's signatures offline."""


@dkim.command()
@click.option("--selector", required=True, help="The DNS selector the record goes under.")
@click.option("--algorithm", type=click.Choice(["rsa", "ed25519"]), default="rsa",
              show_default=True, help="RSA-2048, or Ed25519 (RFC 8463).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the private key (mode 0600).")
@click.option("--domain", help="Signing domain for the record's name; default [dkim] domain "
              "or the sender's domain.")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
@site_command
def keygen(site: Site, selector: str, algorithm: str, out: Path, domain: str | None,
           force: bool) -> None:
    """Write a new private key and print the DNS TXT record to publish."""
    from dispatch.dkim.keys import generate, write_private, zone_line
    from dispatch.dkim.options import _LABEL, KEY_FILE_ENV
    from dispatch.dkim.sign import configured, signing_domain

    if not _LABEL.match(selector):
        raise InputError([Problem("--selector", f"{selector!r} is not a DNS label", None, None,
                                  "letters, digits and hyphens, e.g. news2026")])
    if domain is not None and not _LABEL.match(domain):
        raise InputError([Problem("--domain", f"{domain!r} is not a domain name", None, None,
                                  "a domain like example.org")])
    options = configured(site.settings)
    if domain is None:
        from dispatch.dkim.options import DkimOptions

        domain = signing_domain(site.settings, options or DkimOptions())
    if out.exists() and not force:
        raise InputError([Problem(str(out), "already exists; a key is never overwritten "
                                  "by accident", None, None, "a new file name, or --force")])
    pem, key = generate(algorithm)
    try:
        write_private(out, pem, force=force)
    except OSError as exc:
        raise InputError([Problem(str(out), f"cannot write: {exc.strerror or exc}", None, None,
                                  "a writable path")]) from None
    console.print(f"wrote the {key.algorithm} private key to {out} (mode 0600); keep it secret",
                  markup=False)
    console.print(f"publish this TXT record at {selector}._domainkey.{domain}:", markup=False)
    console.print(zone_line(selector, domain, key.public_record), markup=False)
    console.print(f"value only (for a DNS provider's form): {key.public_record}", markup=False)
    console.print(f"then: export {KEY_FILE_ENV}={out.resolve()}  and in dispatch.toml:\n"
                  f'[dkim]\nselector = "{selector}"'
                  + ('\nalgorithm = "ed25519-sha256"' if algorithm == "ed25519" else ""),
                  markup=False)


@dkim.command()
@click.argument("message", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--txt", "records", multiple=True,
              help="The TXT record as keygen printed it (repeat for two keys); "
                   "without it, DNS is asked.")
def verify(message: Path, records: tuple[str, ...]) -> None:
    """Check every DKIM signature of MESSAGE (an .eml file); exit 1 unless all pass."""
    from dispatch.dkim.verify import parse_txt, verify_message

    parsed = [parse_txt(r) for r in records] if records else None
    results = verify_message(message.read_bytes(), parsed, str(message))
    if not results:
        raise InputError([Problem(str(message), "has no DKIM-Signature header", None, None,
                                  "a message sent or captured with [dkim] configured")])
    for result in results:
        console.print(str(result), markup=False, style=None if result.ok else "red")
    if not all(r.ok for r in results):
        raise SystemExit(1)
