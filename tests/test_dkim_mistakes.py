"""Mistakes a user makes with the DKIM commands: each gets a clear error
naming what was wrong and what was expected, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.email_fixtures import SEND_DATE, articles_of, make_site, recipient

from dispatch.cli import main
from dispatch.dkim.keys import generate
from dispatch.dkim.sign import Signer
from dispatch.render import MessageFactory, render_digest_edition


def _signed(tmp_path: Path) -> bytes:
    settings = make_site(tmp_path / "s")
    _pem, key = generate("rsa")
    # journal.test: a reserved name, so DNS never has a record for it.
    signer = Signer([key], "journal.test", {key.algorithm: "sel"})
    factory = MessageFactory(render_digest_edition(settings, articles_of(settings), "d-1"),
                             settings)
    return signer.build(factory, recipient(), SEND_DATE)


@pytest.mark.parametrize("content", [
    b"# A Markdown file\n\nNot an email.\n",
    b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4,
    b"no colon on this first line\r\nSubject: x\r\n\r\nbody\r\n",
])
def test_verify_refuses_a_file_that_is_not_an_email(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not-mail.txt"
    path.write_bytes(content)
    result = CliRunner().invoke(main, ["dkim", "verify", str(path), "--txt", "v=DKIM1; p=AAAA"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "is not an email message" in result.output and str(path) in result.output
    assert len(result.output) < 600  # a binary line is not echoed in full


def test_verify_says_when_dns_has_no_record(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(_signed(tmp_path))
    result = CliRunner().invoke(main, ["dkim", "verify", str(path)])
    assert result.exit_code == 1
    assert "no DNS TXT record at sel._domainkey.journal.test" in result.output
    assert "changed" not in result.output  # not blamed on tampering


@pytest.mark.parametrize("domain", ["not a domain", "exa mple.org", "-bad.org", "a..b", "x/y"])
def test_keygen_refuses_a_domain_that_is_not_one(tmp_path: Path, domain: str) -> None:
    site = make_site(tmp_path / "s")
    out = tmp_path / "k.pem"
    result = CliRunner().invoke(main, ["dkim", "keygen", "--selector", "s1", "--domain", domain,
                                       "--out", str(out), "--root", str(site.root)])
    assert result.exit_code == 1, result.output
    assert "--domain" in result.output and "is not a domain name" in result.output
    assert not out.exists()  # nothing written for a record nobody can publish


def test_keygen_accepts_a_plain_domain(tmp_path: Path) -> None:
    site = make_site(tmp_path / "s")
    out = tmp_path / "k.pem"
    result = CliRunner().invoke(main, ["dkim", "keygen", "--selector", "s1", "--domain",
                                       "mail.example.org", "--out", str(out),
                                       "--root", str(site.root)])
    assert result.exit_code == 0, result.output
    assert "s1._domainkey.mail.example.org. IN TXT" in result.output and out.exists()
