"""DKIM: keys from the environment, every message signed on its final bytes,
verified offline against the record `dispatch dkim keygen` prints; the end to
end tests go through capture and through a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from tests.delivery_kit import T0, Clock, Sink, edition, seed, smtp_config, start_sink
from tests.email_fixtures import SEND_DATE, articles_of, make_site, recipient

from dispatch.cli import main
from dispatch.config import Settings, load_settings
from dispatch.delivery import deliver
from dispatch.delivery.capture import captured
from dispatch.delivery.personalise import MessageSource
from dispatch.dkim.keys import DkimKeyError, generate, parse_keys
from dispatch.dkim.options import DkimOptions
from dispatch.dkim.sign import OVERSIGNED, BodyHasher, Signer, body_hash, load_signer
from dispatch.dkim.status import aligned, dkim_status, organisational_domain
from dispatch.dkim.verify import TxtRecord, parse_txt, verify_message
from dispatch.errors import ConfigError
from dispatch.outbox import queue_edition
from dispatch.render import MessageFactory, render_article_edition, render_digest_edition
from dispatch.store.engine import Store

REPO = Path(__file__).resolve().parent.parent
ALGORITHMS = {"rsa": ["rsa"], "ed25519": ["ed25519"], "dual": ["rsa", "ed25519"]}
EXPECTED_H = ["from", "to", "subject", "date", "message-id", "mime-version", "content-type",
              "list-id", "list-unsubscribe", "list-unsubscribe-post", "from", "subject"]


def keygen(root: Path, selector: str, algorithm: str, out: Path) -> str:
    """Run the CLI; return the zone-file line it printed."""
    result = CliRunner().invoke(main, ["dkim", "keygen", "--selector", selector,
                                       "--algorithm", algorithm, "--out", str(out),
                                       "--root", str(root)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " IN TXT " in line]
    assert len(lines) == 1
    return lines[0]


def dkim_toml(kinds: list[str]) -> str:
    if kinds == ["rsa"]:
        return '\n[dkim]\nselector = "news-rsa"\n'
    if kinds == ["ed25519"]:
        return '\n[dkim]\nselector = "news-ed"\nalgorithm = "ed25519-sha256"\n'
    return ('\n[dkim]\nselector = "news-rsa"\nalgorithm = ["rsa-sha256", "ed25519-sha256"]\n'
            'ed25519_selector = "news-ed"\n')


def tags(message: bytes) -> list[dict[str, str]]:
    """Each DKIM-Signature's tags, whitespace removed."""
    parsed = message_from_bytes(message, policy=policy.compat32)
    out = []
    for value in parsed.get_all("DKIM-Signature") or []:
        flat = re.sub(r"\s+", "", str(value))
        out.append(dict(part.split("=", 1) for part in flat.split(";") if part))
    return out


@pytest.fixture
def signed_site(example_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                request: pytest.FixtureRequest) -> tuple[Path, list[str]]:
    kinds = ALGORITHMS[request.param]
    records = []
    pem = b""
    for kind in kinds:
        out = tmp_path / f"{kind}.pem"
        records.append(keygen(example_site, "news-rsa" if kind == "rsa" else "news-ed", kind,
                              out))
        assert out.stat().st_mode & 0o777 == 0o600
        pem += out.read_bytes()
    (tmp_path / "dkim.pem").write_bytes(pem)
    with open(example_site / "dispatch.toml", "a", encoding="utf-8") as fh:
        fh.write(dkim_toml(kinds))
    monkeypatch.setenv("DISPATCH_DKIM_KEY_FILE", str(tmp_path / "dkim.pem"))
    monkeypatch.delenv("DISPATCH_DKIM_PRIVATE_KEY", raising=False)
    monkeypatch.delenv("DISPATCH_SMTP_URL", raising=False)
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "k")
    monkeypatch.setenv("DISPATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    return example_site, records


@pytest.mark.parametrize("signed_site", list(ALGORITHMS), indirect=True)
def test_captured_article_and_digest_verify_against_the_printed_record(
        signed_site: tuple[Path, list[str]]) -> None:
    root, records = signed_site
    runner = CliRunner()
    at = ["--root", str(root)]
    assert runner.invoke(main, ["subscribers", "import", str(root / "subscribers.csv"),
                                "--list", "weekly", *at]).exit_code == 0
    sent = runner.invoke(main, ["send", "sleep-and-blood-pressure", "--audience", "weekly",
                                "--deliver", *at])
    assert sent.exit_code == 0, sent.output
    maildir = root / ".dispatch" / "maildir"
    articles = captured(maildir)
    digest = runner.invoke(main, ["send", "--digest", "--audience", "weekly", "--since",
                                  "2026-01-01", "--deliver", *at])
    assert digest.exit_code == 0, digest.output
    digests = [p for p in captured(maildir) if p not in articles]
    assert len(articles) == 8 and len(digests) == 8
    txt = [arg for record in records for arg in ("--txt", record)]
    for path in (articles[0], digests[0]):
        result = runner.invoke(main, ["dkim", "verify", str(path), *txt])
        assert result.exit_code == 0, result.output
        assert result.output.count("pass: ") == len(records), result.output
    parsed = [parse_txt(r) for r in records]
    for path in articles + digests:  # every message, each with its own signature(s)
        results = verify_message(path.read_bytes(), parsed)
        assert len(results) == len(records) and all(r.ok for r in results), results
    # Without the matching record nothing passes: the check is real.
    _, other = generate("rsa" if "k=rsa" in records[0] else "ed25519")
    wrong = runner.invoke(main, ["dkim", "verify", str(articles[0]), "--txt",
                                 other.public_record])
    assert wrong.exit_code == 1 and "FAIL" in wrong.output


def _signed_message(tmp_path: Path, kinds: tuple[str, ...] = ("rsa",)
                    ) -> tuple[bytes, list[TxtRecord]]:
    settings = make_site(tmp_path / "s")
    keys = [generate(kind)[1] for kind in kinds]
    signer = Signer(keys, "journal.test", {k.algorithm: "sel" + k.algorithm[:3] for k in keys})
    factory = MessageFactory(render_digest_edition(settings, articles_of(settings), "d-1"),
                             settings)
    message = signer.build(factory, recipient(), SEND_DATE)
    return message, [TxtRecord(k.public_record) for k in keys]


def test_signed_headers_relaxed_and_over_signed(tmp_path: Path) -> None:
    message, _ = _signed_message(tmp_path, ("rsa", "ed25519"))
    found = tags(message)
    assert [t["a"] for t in found] == ["rsa-sha256", "ed25519-sha256"]
    for tag in found:
        assert tag["c"] == "relaxed/relaxed" and tag["d"] == "journal.test"
        assert tag["h"].split(":") == EXPECTED_H
        h = tag["h"].split(":")
        for name in (n.decode() for n in OVERSIGNED):
            # once more than the message holds, so a second copy breaks the signature
            assert h.count(name) == 2 and message.count(f"\n{name.title()}: ".encode()) == 1
    # The signature is at the top, ahead of everything it covers.
    assert message.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")


TAMPERING = {
    "body word": lambda m: m.replace(b"Cutting salt", b"Cutting sa1t", 1),
    "second From": lambda m: m.replace(b"\r\nFrom: ", b"\r\nFrom: Evil <e@evil.test>\r\nFrom: ", 1),
    "second Subject": lambda m: m.replace(b"\r\nSubject: ", b"\r\nSubject: Win!\r\nSubject: ", 1),
    "changed Subject": lambda m: re.sub(rb"\r\nSubject: ", b"\r\nSubject: Re: ", m, count=1),
    "List-Unsubscribe": lambda m: m.replace(b"https://journal.test/u/", b"https://evil.test/u/", 1),
    "appended text": lambda m: m + b"Click here\r\n",
}


@pytest.mark.parametrize("change", list(TAMPERING))
def test_tampered_message_fails(tmp_path: Path, change: str) -> None:
    message, records = _signed_message(tmp_path, ("rsa", "ed25519"))
    assert all(r.ok for r in verify_message(message, records))
    tampered = TAMPERING[change](message)
    assert tampered != message
    path = tmp_path / "tampered.eml"
    path.write_bytes(tampered)
    result = CliRunner().invoke(main, ["dkim", "verify", str(path),
                                       *[a for r in records for a in ("--txt", r.value)]])
    assert result.exit_code == 1 and result.output.count("FAIL") == 2, result.output
    if change in ("body word", "appended text"):
        assert "body was changed" in result.output


RELAY_CHANGES = {
    "unsigned header added": lambda m: b"Received: from relay\r\nX-Spam: no\r\n" + m,
    "header re-folded": lambda m: m.replace(b"\r\nSubject: ", b"\r\nSubject:\r\n   ", 1),
    "trailing spaces": lambda m: m.replace(b"=\r\n", b"=  \r\n", 5),
    "LF line ends": lambda m: m.replace(b"\r\n", b"\n"),
}


@pytest.mark.parametrize("change", list(RELAY_CHANGES))
def test_what_relays_do_keeps_the_signature(tmp_path: Path, change: str) -> None:
    message, records = _signed_message(tmp_path, ("rsa", "ed25519"))
    changed = RELAY_CHANGES[change](message)
    assert changed != message
    assert all(r.ok for r in verify_message(changed, records))


# Names with runs of spaces, leading/trailing blanks, non-ASCII, QP-special
# characters: each value is canonicalised apart from the cached pieces.
NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40)


@hsettings(max_examples=60, deadline=None)
@given(name=NAMES, local=st.from_regex(r"[a-z0-9+_-]{1,10}(\.[a-z0-9+_-]{1,9})?", fullmatch=True),
       token=st.from_regex(r"[A-Za-z0-9_-]{1,60}", fullmatch=True))
def test_cached_body_hash_equals_whole_body_canonicalisation(
        digest_factory: MessageFactory, name: str, local: str, token: str) -> None:
    person = recipient(name=name or None, email=f"{local}@example.org", token=token)
    pieces = digest_factory.pieces(person, date=SEND_DATE)
    whole = b"".join(pieces)
    assert BodyHasher(digest_factory).digest(pieces) == body_hash(
        whole.partition(b"\r\n\r\n")[2])


@pytest.fixture(scope="module")
def digest_factory(tmp_path_factory: pytest.TempPathFactory) -> MessageFactory:
    settings = make_site(tmp_path_factory.mktemp("hash"))
    return MessageFactory(render_digest_edition(settings, articles_of(settings), "d-1"),
                          settings)


def test_article_factory_signs_like_whole_message_signing(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "s")
    factory = MessageFactory(render_article_edition(settings, articles_of(settings)[0], "a-1"),
                             settings)
    _, key = generate("ed25519")
    signer = Signer([key], "journal.test", {"ed25519-sha256": "s"})
    person = recipient(name="  Ann   Reader  ")
    fast = signer.build(factory, person, SEND_DATE)
    plain = factory.build(person, date=SEND_DATE)
    slow = signer.sign(plain, int(SEND_DATE.timestamp()))
    assert fast.endswith(plain)
    assert tags(fast)[0]["bh"] == tags(slow)[0]["bh"]
    # Ed25519 signatures are deterministic: the whole header matches too.
    assert fast == slow


def test_smtp_delivered_message_verifies(store: Store, site_root: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pem, key = generate("rsa")
    monkeypatch.setenv("DISPATCH_DKIM_PRIVATE_KEY", pem.decode())
    monkeypatch.delenv("DISPATCH_DKIM_KEY_FILE", raising=False)
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "test-secret")
    with open(site_root / "dispatch.toml", "a", encoding="utf-8") as fh:
        fh.write('\n[dkim]\nselector = "sink"\n')
    settings = load_settings(site_root)
    seed(store, 3)
    queue_edition(store, edition(), ["main"], T0)
    sink = Sink()
    ctl = start_sink(sink)
    try:
        report = deliver(store, settings, T0, config=smtp_config(ctl.port), clock=Clock())
    finally:
        ctl.stop()
    assert report.sent == 3 and len(sink.accepted) == 3
    for _rcpt, data in sink.accepted:
        results = verify_message(data, [parse_txt(key.public_record)])
        assert [(r.ok, r.domain, r.selector) for r in results] == [(True, "journal.test", "sink")]


# --- configuration ------------------------------------------------------------

CONFIG_MISTAKES = {
    'selector = "s"\nprivate_key = "-----BEGIN PRIVATE KEY-----"':
        ("dkim.private_key", "never read from dispatch.toml"),
    'domain = "journal.test"': ("dkim.selector", "missing"),
    'selector = "a b"': ("dkim.selector", "a DNS name"),
    'selector = "s"\nalgorithm = "rsa"': ("dkim.algorithm", "rsa-sha256"),
    'selector = "s"\nalgorithm = ["rsa-sha256", "ed25519-sha256"]':
        ("dkim.ed25519_selector", "second selector"),
    'selector = "s"\nalgorithm = ["rsa-sha256", "ed25519-sha256"]\ned25519_selector = "s"':
        ("dkim.ed25519_selector", "its own selector"),
    'selector = "s"\nalgorithm = ["rsa-sha256", "rsa-sha256"]': ("dkim.algorithm", "once each"),
}


@pytest.mark.parametrize("body", list(CONFIG_MISTAKES))
def test_config_mistakes_are_reported_with_line_and_field(site_root: Path, body: str) -> None:
    with open(site_root / "dispatch.toml", "a", encoding="utf-8") as fh:
        fh.write(f"\n[dkim]\n{body}\n")
    result = CliRunner().invoke(main, ["check", "--root", str(site_root)])
    field, words = CONFIG_MISTAKES[body]
    assert result.exit_code == 1
    assert re.search(rf"dispatch\.toml:\d+: {re.escape(field)}: .*{re.escape(words)}",
                     result.output), result.output
    assert "BEGIN PRIVATE KEY" not in result.output  # a secret is never echoed
    assert "Traceback" not in result.output


def _settings_with(site_root: Path, body: str) -> Settings:
    with open(site_root / "dispatch.toml", "a", encoding="utf-8") as fh:
        fh.write(f"\n[dkim]\n{body}\n")
    return load_settings(site_root)


KEY_MISTAKES = {
    "no key": ({}, "no private key was given"),
    "not PEM": ({"DISPATCH_DKIM_PRIVATE_KEY": "hello"}, "$DISPATCH_DKIM_PRIVATE_KEY: no PEM"),
    "broken PEM": ({"DISPATCH_DKIM_PRIVATE_KEY":
                    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"},
                   "key 1 does not parse"),
    "missing file": ({"DISPATCH_DKIM_KEY_FILE": "/nonexistent/k.pem"}, "cannot read"),
    "wrong kind": ("ed25519", "needs an RSA key"),
}


@pytest.mark.parametrize("case", list(KEY_MISTAKES))
def test_unusable_key_stops_delivery_and_check_says_why(site_root: Path, case: str) -> None:
    environ, words = KEY_MISTAKES[case]
    if environ == "ed25519":
        environ = {"DISPATCH_DKIM_PRIVATE_KEY": generate("ed25519")[0].decode()}
    assert isinstance(environ, dict)
    settings = _settings_with(site_root, 'selector = "s"')
    with pytest.raises(DkimKeyError) as caught:
        load_signer(settings, environ)
    assert isinstance(caught.value, ConfigError) and words in str(caught.value)
    line, problems = dkim_status(settings, environ)
    assert "cannot be used" in line and any(words in str(p) for p in problems)


def test_delivery_refuses_to_send_unsigned_when_dkim_is_configured(
        site_root: Path, monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    monkeypatch.delenv("DISPATCH_DKIM_PRIVATE_KEY", raising=False)
    monkeypatch.delenv("DISPATCH_DKIM_KEY_FILE", raising=False)
    settings = _settings_with(site_root, 'selector = "s"')
    with pytest.raises(DkimKeyError):
        MessageSource(store, settings, b"k")


def test_no_section_means_signing_off(site_root: Path, store: Store) -> None:
    settings = load_settings(site_root)
    assert load_signer(settings, {"DISPATCH_DKIM_PRIVATE_KEY": "anything"}) is None
    assert MessageSource(store, settings, b"k").signer is None
    assert "signing off" in dkim_status(settings, {})[0]


def test_check_reports_key_and_alignment(site_root: Path, tmp_path: Path) -> None:
    pem = tmp_path / "k.pem"
    keygen(site_root, "s1", "rsa", pem)
    env = {**os.environ, "DISPATCH_DKIM_KEY_FILE": str(pem)}
    ok = CliRunner(env=env).invoke(main, ["check", "--root", str(site_root)])
    assert "signing off" in ok.output
    with open(site_root / "dispatch.toml", "a", encoding="utf-8") as fh:
        fh.write('\n[dkim]\nselector = "s1"\ndomain = "mail.other.test"\n')
    result = CliRunner(env=env).invoke(main, ["check", "--root", str(site_root)])
    assert "rsa-sha256 (2048-bit) as s1._domainkey.mail.other.test; key parses" in result.output
    assert "NOT aligned with From journal.test" in result.output
    assert re.search(r"dispatch\.toml:\d+: dkim\.domain: warning: signing domain "
                     r"mail\.other\.test does not align", result.output), result.output


@pytest.mark.parametrize(("signing", "sender", "ok"), [
    ("example.org", "example.org", True),
    ("mail.example.org", "example.org", True),
    ("example.org", "news.example.org", True),
    ("news.example.co.uk", "example.co.uk", True),
    ("example.co.uk", "other.co.uk", False),  # co.uk is a public suffix
    ("example.com", "example.org", False),
    ("a.github.io", "b.github.io", False),  # a private suffix on the list
])
def test_relaxed_alignment_uses_the_public_suffix_list(signing: str, sender: str,
                                                       ok: bool) -> None:
    assert aligned(signing, sender) is ok
    assert organisational_domain("a.b.example.co.uk") == "example.co.uk"


def test_keygen_refuses_to_overwrite_and_writes_0600(site_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "k.pem"
    line = keygen(site_root, "sel", "ed25519", out)
    assert line.startswith("sel._domainkey.journal.test. IN TXT \"v=DKIM1; k=ed25519; p=")
    first = out.read_bytes()
    again = CliRunner().invoke(main, ["dkim", "keygen", "--selector", "sel", "--out", str(out),
                                      "--root", str(site_root)])
    assert again.exit_code == 1 and "already exists" in again.output
    assert out.read_bytes() == first
    bad = CliRunner().invoke(main, ["dkim", "keygen", "--selector", "no good", "--out",
                                    str(tmp_path / "x.pem"), "--root", str(site_root)])
    assert bad.exit_code == 1 and "not a DNS label" in bad.output
    (key,) = parse_keys(first, "k.pem")
    assert parse_txt(line).value == key.public_record


def test_rsa_record_is_split_into_dns_strings(site_root: Path, tmp_path: Path) -> None:
    line = keygen(site_root, "big", "rsa", tmp_path / "r.pem")
    strings = re.findall(r'"([^"]*)"', line)
    assert len(strings) >= 2 and all(len(s) <= 255 for s in strings)
    assert parse_txt(line).name == "big._domainkey.journal.test"


def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    pem, key = generate("rsa")
    signer = Signer([key], "journal.test", {"rsa-sha256": "s"})
    secret_line = pem.decode().splitlines()[1]
    for shown in (repr(key), repr(signer), repr(DkimOptions(selector="s"))):
        assert secret_line not in shown and "PRIVATE" not in shown
    assert "key=***" in repr(signer)
    options = DkimOptions.model_construct(selector="s", private_key=pem.decode())
    assert secret_line not in repr(options) and "***" in repr(options)


def test_verify_without_signature_or_with_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "plain.eml"
    path.write_bytes(b"From: a@b.test\r\nSubject: x\r\n\r\nhi\r\n")
    result = CliRunner().invoke(main, ["dkim", "verify", str(path), "--txt", "v=DKIM1; p=AAAA"])
    assert result.exit_code == 1 and "no DKIM-Signature" in result.output
    message, _ = _signed_message(tmp_path)
    path.write_bytes(message)
    junk = CliRunner().invoke(main, ["dkim", "verify", str(path), "--txt", "hello"])
    assert junk.exit_code == 1 and "not a DKIM key record" in junk.output
    assert "Traceback" not in junk.output


def test_example_site_untouched_by_tests() -> None:
    # The repository's own dispatch.toml has no [dkim]: the README's first run
    # needs no key. (A copy is what the end-to-end tests change.)
    assert "[dkim]" not in (REPO / "dispatch.toml").read_text(encoding="utf-8")
    assert shutil.which("true") is not None


def test_signup_confirmation_is_signed_too(site_root: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    from dispatch.signup.mail import confirmation_message
    from dispatch.signup.requests import _send

    pem, key = generate("ed25519")
    monkeypatch.setenv("DISPATCH_DKIM_PRIVATE_KEY", pem.decode())
    with open(site_root / "dispatch.toml", "a", encoding="utf-8") as fh:
        fh.write('\n[dkim]\nselector = "conf"\nalgorithm = "ed25519-sha256"\n')
    settings = load_settings(site_root)
    message = confirmation_message(settings, email="ann@example.org", name="Ann",
                                   confirm_url="https://journal.test/confirm/x", lists=[],
                                   expires=SEND_DATE, date=SEND_DATE)
    assert _send(settings, "ann@example.org", message, SEND_DATE) == "sent"
    (path,) = captured(settings.state_dir / "maildir")
    results = verify_message(path.read_bytes(), [parse_txt(key.public_record)])
    assert [(r.ok, r.selector) for r in results] == [(True, "conf")]
    # No usable key: the confirmation fails instead of leaving unsigned.
    monkeypatch.delenv("DISPATCH_DKIM_PRIVATE_KEY")
    assert _send(settings, "ann@example.org", message, SEND_DATE).startswith("failed: ")
    assert len(captured(settings.state_dir / "maildir")) == 1
