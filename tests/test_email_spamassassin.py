"""The example site's mail, scored by a real spam filter.

dispatch sends an article edition, a digest, a ``--test`` copy and a signup
confirmation into the capture maildir, unsigned and DKIM-signed, and
SpamAssassin's own rules score each message (``spamassassin -t -L``: local
tests only, so no DNS or network checks, and Bayes is off so the score does
not depend on what the filter learned before). What the filter sees is what
dispatch wrote: headers, MIME structure, the text part beside the HTML, the
HTML itself. A message must stay well below the usual 5.0 spam threshold,
and none of the rules that flag a badly built message may fire.

Marked ``spamassassin``: it needs Debian's spamassassin package (installed
by .ci/run) and says so when it skips.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.web_kit import SECRET

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.dkim.keys import generate
from dispatch.signup.mail import ListChoice, confirmation_message

pytestmark = pytest.mark.spamassassin

# Well below SpamAssassin's default 5.0: the example mail scores 0.0 today.
THRESHOLD = 2.0

# Rules that fire on a message built wrongly rather than on its words or its
# (test) domains; any one of them is a dispatch bug whatever it scores.
STRUCTURAL = frozenset({
    "MISSING_DATE", "MISSING_MID", "INVALID_MSGID", "MISSING_HEADERS", "MISSING_FROM",
    "MISSING_SUBJECT", "MIME_HTML_ONLY", "MIME_HTML_MOSTLY", "MPART_ALT_DIFF",
    "MPART_ALT_DIFF_COUNT", "MIME_QP_LONG_LINE", "MIME_BOUND_DIGITS_15", "MIME_HEADER_CTYPE_ONLY",
    "HTML_IMAGE_ONLY_04", "HTML_IMAGE_ONLY_08", "HTML_IMAGE_ONLY_12", "HTML_IMAGE_ONLY_16",
    "HTML_IMAGE_ONLY_20", "HTML_IMAGE_ONLY_24", "HTML_IMAGE_ONLY_28", "HTML_IMAGE_ONLY_32",
    "HTML_IMAGE_RATIO_02", "HTML_IMAGE_RATIO_04", "HTML_IMAGE_RATIO_06", "HTML_IMAGE_RATIO_08",
    "HTML_FONT_LOW_CONTRAST", "HTML_MIME_NO_HTML_TAG", "HTML_TAG_BALANCE_BODY",
    "HTML_TAG_BALANCE_HEAD", "HTML_SHORT_LINK_IMG_1", "FROM_EXCESS_BASE64",
    "SUBJ_ALL_CAPS", "TVD_SPACE_RATIO", "TVD_SPACE_RATIO_MINFP", "DATE_IN_FUTURE_03_06",
    "DATE_IN_PAST_03_06", "FROM_ADDR_WS", "TO_NO_BRKTS_HTML_ONLY", "EMPTY_MESSAGE",
})


def spamassassin_unavailable() -> str | None:
    """Why SpamAssassin cannot score mail here, or None."""
    if shutil.which("spamassassin") is None:
        return "SpamAssassin is not installed (.ci/run installs Debian's spamassassin package)"
    return None


def score(raw: bytes, home: Path) -> tuple[float, list[str], str]:
    """SpamAssassin's score, rule hits and report for one message."""
    # A private HOME and -x: the run neither reads nor writes the user's
    # ~/.spamassassin; Bayes off keeps the score about this message alone.
    done = subprocess.run(
        ["spamassassin", "-t", "-L", "-x", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"],
        input=raw, capture_output=True, check=True, timeout=120,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C"})
    scored = message_from_bytes(done.stdout, policy=policy.default)
    status = " ".join(str(scored["X-Spam-Status"]).split())
    fields = dict(part.split("=", 1) for part in status.split() if "=" in part)
    hits = [hit for hit in fields.get("tests", "").split(",") if hit and hit != "none"]
    text = done.stdout.decode("utf-8", "replace")
    report = text[text.find("Content analysis details"):] if "Content analysis" in text else status
    return float(fields["score"]), hits, report.strip()


def new_mail(maildir: Path, seen: set[Path]) -> Path:
    """The first of the messages captured since ``seen`` (which they join)."""
    fresh = sorted(set(maildir.glob("*.eml")) - seen)
    assert fresh, f"nothing new was captured in {maildir}"
    seen.update(fresh)
    return fresh[0]


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "dkim"])
def test_every_kind_of_message_scores_low_with_no_structural_rule(
        example_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        signed: bool) -> None:
    why = spamassassin_unavailable()
    if why:
        pytest.skip(why)
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    monkeypatch.setenv("DISPATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'spam.db'}")
    for name in ("DISPATCH_SMTP_URL", "DISPATCH_BOUNCE_MAILBOX", "DISPATCH_DKIM_KEY_FILE",
                 "DISPATCH_DKIM_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    if signed:
        pem, _key = generate("rsa")
        monkeypatch.setenv("DISPATCH_DKIM_PRIVATE_KEY", pem.decode())
        with open(example_site / "dispatch.toml", "a", encoding="utf-8") as fh:
            fh.write('\n[dkim]\nselector = "news2026"\n')
    root = ["--root", str(example_site)]
    runner = CliRunner()
    maildir = example_site / ".dispatch" / "maildir" / "new"
    seen: set[Path] = set()
    # The pass imports the lists from subscribers.csv; what it captures
    # (nothing, on the example site) is not scored.
    passed = runner.invoke(main, ["run", "--once", *root])
    assert passed.exit_code == 0, passed.output
    seen.update(maildir.glob("*.eml"))
    messages: dict[str, bytes] = {}
    for kind, args in (
            ("article", ["send", "sleep-and-blood-pressure", "--audience", "heart-health",
                         "--deliver"]),
            ("digest", ["send", "--digest", "--audience", "weekly", "--since", "2026-01-01",
                        "--deliver"]),
            ("test send", ["send", "sleep-and-blood-pressure", "--test", "you@example.org"])):
        result = runner.invoke(main, [*args, *root])
        assert result.exit_code == 0, result.output
        messages[kind] = new_mail(maildir, seen).read_bytes()
    settings = load_settings(example_site)
    now = datetime.now(UTC)
    messages["confirmation"] = confirmation_message(
        settings, email="ann@example.org", name="Ann",
        confirm_url=settings.site.url + "/confirm/token", expires=now + timedelta(days=7),
        lists=[ListChoice("weekly", "Every Monday: the week's new articles in one email.")],
        date=now)
    if signed:
        # The confirmation is signed when it is sent; here it is scored as built.
        assert all(b"\nDKIM-Signature:" in raw
                   for kind, raw in messages.items() if kind != "confirmation")
    home = tmp_path / "home"
    home.mkdir()
    failures = []
    for kind, raw in messages.items():
        points, hits, report = score(raw, home)
        structural = sorted(STRUCTURAL.intersection(hits))
        if points >= THRESHOLD or structural:
            failures.append(f"{kind}: score {points} (limit {THRESHOLD}), hits {hits}, "
                            f"structural {structural}\n{report}")
    assert not failures, "\n\n".join(failures)
