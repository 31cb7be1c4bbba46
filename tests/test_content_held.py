"""One rule for an article with errors (what `dispatch check` calls an error,
e.g. its email would be clipped by Gmail, or its post cannot fit): it
reaches no channel — no feed, no social post, no email — and every pass
says so until it is fixed; then it is published as usual."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.sitekit import write_article

ENV = {k: v for k, v in os.environ.items()
       if k not in ("DISPATCH_DATABASE_URL", "DISPATCH_SMTP_URL")}
ENV["COLUMNS"] = "200"

FRONT = "title: Held article\ndate: 2026-11-01T08:00:00\nsummary: Held."
SMALL = "A short body.\n\n## Key takeaway\n\nShort and fine.\n"
# ~140 KB of prose: the email's HTML part is over Gmail's 102 KB clip.
HUGE = "".join(f"Paragraph {i} " + "of plain words " * 60 + "\n\n" for i in range(160)) + (
    "## Key takeaway\n\nFine.\n")


def dispatch(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "dispatch", *args, "--root", str(root)],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def posts_for(root: Path, slug: str) -> list[Path]:
    folder = root / ".dispatch" / "social"
    return [p for p in folder.rglob("*.json")
            if slug in json.dumps(json.loads(p.read_text(encoding="utf-8")))]


def test_an_article_with_errors_reaches_no_channel_until_fixed(example_site: Path) -> None:
    assert dispatch(example_site, "run", "--once").returncode == 0
    slug, marker = "held", "email: HTML part is"
    write_article(example_site, "held.md", FRONT, HUGE)

    check = dispatch(example_site, "check")
    assert check.returncode == 1
    assert f"content/held.md: {marker}" in check.stderr, check.stderr
    assert "1 article(s) with errors reach no feed, post or email until fixed: " \
           "content/held.md" in check.stdout

    for _ in range(2):  # reported on every pass, not only the first
        run = dispatch(example_site, "run", "--once")
        assert run.returncode == 1
        assert f"content/held.md: {marker}" in run.stderr
        assert "held back until their errors are fixed (no feed, post or email): " \
               "content/held.md" in run.stdout
        assert "Held article" not in (example_site / "public" / "feed.xml").read_text("utf-8")
        assert posts_for(example_site, slug) == []

    send = dispatch(example_site, "send", slug, "--audience", "weekly", "--deliver")
    assert send.returncode == 1
    assert f"'{slug}' has errors: it reaches no feed, post or email" in send.stderr
    by_hand = dispatch(example_site, "social", slug, "--queue")
    assert by_hand.returncode == 1
    assert f"'{slug}' has errors: it reaches no feed, post or email" in by_hand.stderr
    assert posts_for(example_site, slug) == []
    digest = dispatch(example_site, "send", "--digest", "--audience", "weekly", "--since",
                      "2026-10-01", "--dry-run")
    assert digest.returncode == 0, digest.stderr
    assert "left out of the digest until their errors are fixed: content/held.md" in (
        digest.stderr)

    # Fixed (a small body; a short slug): published as new at the next pass.
    write_article(example_site, "held.md", FRONT, SMALL)
    fixed = dispatch(example_site, "run", "--once")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "new 1 (held)" in fixed.stdout
    assert "Held article" in (example_site / "public" / "feed.xml").read_text("utf-8")
    assert posts_for(example_site, "held")  # x is queued on publish in the example site


def test_a_published_article_that_gains_an_error_is_held_then_returns(
        example_site: Path) -> None:
    assert dispatch(example_site, "run", "--once").returncode == 0
    feed = example_site / "public" / "feed.xml"
    assert "A short walk after meals" in feed.read_text("utf-8")
    source = example_site / "content" / "walking-after-meals.md"
    original = source.read_text(encoding="utf-8")
    source.write_text(original + "\n" + HUGE, encoding="utf-8")
    run = dispatch(example_site, "run", "--once")
    assert run.returncode == 1
    assert "content/walking-after-meals.md: email: HTML part is" in run.stderr
    assert "A short walk after meals" not in feed.read_text("utf-8")
    source.write_text(original, encoding="utf-8")
    back = dispatch(example_site, "run", "--once")
    assert back.returncode == 0, back.stderr
    assert "new 0" in back.stdout  # not announced a second time
    assert "A short walk after meals" in feed.read_text("utf-8")


def test_a_template_change_that_breaks_published_emails_holds_them_too(
        example_site: Path) -> None:
    """The pass follows `check` when what changed is the template, not the
    article: an unchanged published article whose email the new template
    pushes past Gmail's clip leaves the feeds until the template is fixed."""
    assert dispatch(example_site, "run", "--once").returncode == 0
    feed = example_site / "public" / "feed.xml"
    assert "A short walk after meals" in feed.read_text("utf-8")
    bundled = Path(__file__).resolve().parent.parent / "src" / "dispatch" / "templates"
    template = (bundled / "email" / "article.html").read_text(encoding="utf-8")
    legal = "<p>" + "Legal notice in many plain words. " * 4500 + "</p>"
    override = example_site / "templates" / "email" / "article.html"
    override.write_text(template.replace("{% block content %}",
                                         "{% block content %}" + legal, 1), encoding="utf-8")

    check = dispatch(example_site, "check")
    assert check.returncode == 1 and "content/walking-after-meals.md: email" in check.stderr
    for _ in range(2):  # and on the next pass too, though nothing changed in between
        run = dispatch(example_site, "run", "--once")
        assert run.returncode == 1, run.stdout
        assert "content/walking-after-meals.md: email: HTML part is" in run.stderr
        # Every example article is held, so the feed may be gone altogether.
        assert not feed.exists() or "A short walk after meals" not in feed.read_text("utf-8")

    override.unlink()
    back = dispatch(example_site, "run", "--once")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "new 0" in back.stdout  # not announced a second time
    assert "A short walk after meals" in feed.read_text("utf-8")


def test_send_refuses_an_article_kept_out_of_emails(example_site: Path) -> None:
    """`email: false` keeps an article out of digests and article schedules;
    `dispatch send SLUG` queued it to the whole list all the same."""
    from click.testing import CliRunner

    from dispatch.cli import main

    write_article(example_site, "web-only.md",
                  "title: Web only\ndate: 2026-11-01T08:00:00\nemail: false", SMALL)
    root = ["--root", str(example_site)]
    runner = CliRunner()
    assert runner.invoke(main, ["subscribers", "add", "ann@example.com", "--list", "weekly",
                                *root]).exit_code == 0
    for extra in ([], ["--dry-run"]):
        result = runner.invoke(main, ["send", "web-only", "--audience", "weekly", *extra, *root])
        assert result.exit_code == 1, result.output
        assert "web-only has `email: false` in its frontmatter" in result.output
    assert "no editions queued" in runner.invoke(main, ["queue", *root]).output
    test = runner.invoke(main, ["send", "web-only", "--test", "me@example.com", *root])
    assert test.exit_code == 0 and "me@example.com: sent" in test.output, test.output
