"""Recipient values in templates, reply_to, takeaway override, check's extra checks."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatch.bounces.verp import make_token
from dispatch.checks import all_problems
from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.errors import ConfigError, TemplateError
from dispatch.render import (
    HeaderInjectionError,
    MessageFactory,
    render_article_edition,
    render_digest_edition,
)
from dispatch.render.env import PACKAGE_DIR
from email_fixtures import ARTICLE, NOW, SEND_DATE, articles_of, make_site, recipient, write

GREETING = '<p class="greeting">Hi {{ recipient.first_name }},</p>'


def _digest_with(root: Path, greeting: str) -> None:
    source = (PACKAGE_DIR / "digest.html").read_text(encoding="utf-8")
    assert GREETING in source
    write(root, "templates/email/digest.html", source.replace(GREETING, greeting))


def _greeting_line() -> int:
    lines = (PACKAGE_DIR / "digest.html").read_text(encoding="utf-8").splitlines()
    return lines.index(GREETING) + 1


@pytest.mark.parametrize("expression", [
    "recipient.name|title", "recipient.name|upper", "recipient.name|truncate(8)",
    "recipient.name.split()[0]", "recipient.name ~ '!'", "recipient.name|lower|e",
    "recipient.name[:3]", "recipient.name|replace('a', 'b')",
    # Ways round the obvious ones: repr, the whole mapping, the slot's insides.
    "recipient.name|pprint", "recipient", "recipient.items()|list", "recipient.name.key",
    "recipient.name.text[:8]", "recipient.name._slot_text",
])
def test_operations_on_recipient_values_are_refused_with_file_and_line(
        tmp_path: Path, expression: str) -> None:
    root = tmp_path / "s"
    settings = make_site(root)
    _digest_with(root, f'<p class="greeting">Hi {{{{ {expression} }}}},</p>')
    with pytest.raises(TemplateError) as caught:
        render_digest_edition(settings, articles_of(settings), "x")
    problem = caught.value.problems[0]
    assert (problem.path, problem.line) == ("templates/email/digest.html", _greeting_line())
    assert "can only be printed as it is" in problem.message
    # `dispatch check` reports it the same way, and preview refuses cleanly.
    assert any(p.is_error and p.path == "templates/email/digest.html"
               and p.line == _greeting_line() for p in all_problems(settings, NOW))
    result = CliRunner().invoke(main, ["preview", "--digest", "--since", "2026-01-01",
                                       "--root", str(root)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"templates/email/digest.html:{_greeting_line()}" in result.output
    assert "DISPATCHx" not in result.output


def test_plain_printing_still_works_everywhere(tmp_path: Path) -> None:
    root = tmp_path / "s"
    settings = make_site(root)
    _digest_with(root, '<p class="greeting">{% set who = recipient.name %}'
                 "{% if recipient.name %}Hi {{ who }}{% endif %},</p>")
    edition = render_digest_edition(settings, articles_of(settings), "x")
    raw = MessageFactory(edition, settings).build(recipient("Ann"), date=SEND_DATE)
    message = email.message_from_bytes(raw, policy=policy.default)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Hi Ann," in html and "DISPATCHx" not in html


def test_a_damaged_placeholder_is_refused_with_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "s"
    settings = make_site(root)
    # Captured into a string, the value escapes the Slot: only the leftover
    # check can see that |lower changed the token.
    _digest_with(root, '<p class="greeting">{% set who %}{{ recipient.name }}{% endset %}'
                 "Hi {{ who|lower }},</p>")
    with pytest.raises(TemplateError, match="changed after printing") as caught:
        render_digest_edition(settings, articles_of(settings), "x")
    problem = caught.value.problems[0]
    assert (problem.path, problem.line) == ("templates/email/digest.html", _greeting_line())


def test_placeholder_text_in_an_article_is_refused(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "s", {"a.md": ARTICLE.replace(
        "Most salt comes", "Token dispatchxrcptxnamex7q here. Most salt comes")})
    with pytest.raises(TemplateError, match="reserves") as caught:
        render_article_edition(settings, articles_of(settings)[0], "x")
    assert caught.value.problems[0].path == "content/a.md"


def test_name_in_an_attribute_fails_check_with_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "s"
    settings = make_site(root)
    _digest_with(root, '<p class="greeting" title="{{ recipient.name }}">Hi,</p>')
    problems = [p for p in all_problems(settings, NOW) if p.is_error]
    assert any(p.path == "templates/email/digest.html" and p.line == _greeting_line()
               and "HTML attribute" in p.message for p in problems), problems
    result = CliRunner().invoke(main, ["preview", "--digest", "--since", "2026-01-01",
                                       "--root", str(root)])
    assert result.exit_code == 1
    assert f"templates/email/digest.html:{_greeting_line()}" in result.output


def test_check_compares_fast_and_naive_paths(tmp_path: Path) -> None:
    """A name inside an HTML comment (Outlook-only markup) is not parsed by lxml,
    so the naive path keeps Jinja's &#34; while the fast path writes a quote:
    only the comparison in `dispatch check` can see that."""
    root = tmp_path / "s"
    settings = make_site(root)
    _digest_with(root, GREETING + "\n<!--[if mso]><p>For {{ recipient.name }}</p><![endif]-->")
    render_digest_edition(settings, articles_of(settings), "x")  # renders fine
    problems = [p for p in all_problems(settings, NOW) if p.is_error]
    assert any(p.path == "templates/email/digest.html" and p.line == _greeting_line() + 1
               and "cannot be personalised" in p.message for p in problems), problems
    # The packaged templates pass the same comparison.
    clean = make_site(tmp_path / "clean")
    assert not [p for p in all_problems(clean, NOW) if p.is_error]


@pytest.mark.parametrize("url,flagged", [
    ("http://journal.example", True), ("https://journal.example", False),
    ("http://localhost:8000", False), ("http://127.0.0.1:9000", False),
])
def test_check_flags_a_non_https_unsubscribe_base(tmp_path: Path, url: str,
                                                  flagged: bool) -> None:
    settings = make_site(tmp_path / "s")
    toml = tmp_path / "s" / "dispatch.toml"
    toml.write_text(toml.read_text() + f'\n[web]\npublic_url = "{url}"\n', encoding="utf-8")
    settings = load_settings(tmp_path / "s")
    found = [p for p in all_problems(settings, NOW) if p.field == "web.public_url"]
    assert bool(found) is flagged, found
    if flagged:
        assert found[0].is_error and found[0].path == "dispatch.toml" and found[0].line
        assert "https" in found[0].message


@pytest.mark.parametrize("value", ['"ann@example.org\\nBcc: victim@example.org"',
                                   '"ann@example.org\\r\\nX-Evil: 1"',
                                   '"not an address"', '"a@example.org, b@example.org"', "3"])
def test_bad_reply_to_is_a_config_error_naming_the_line(tmp_path: Path, value: str) -> None:
    root = tmp_path / "s"
    make_site(root)
    toml = root / "dispatch.toml"
    text = toml.read_text(encoding="utf-8")
    assert "[sender]\n" in text
    toml.write_text(text.replace("[sender]\n", f"[sender]\nreply_to = {value}\n"),
                    encoding="utf-8")
    line = toml.read_text().splitlines().index(f"reply_to = {value}") + 1
    with pytest.raises(ConfigError) as caught:
        load_settings(root)
    problem = caught.value.problems[0]
    assert (problem.path, problem.line, problem.field) == ("dispatch.toml", line,
                                                           "sender.reply_to")


def test_good_reply_to_is_a_header_and_a_forged_one_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "s"
    make_site(root)
    toml = root / "dispatch.toml"
    toml.write_text(toml.read_text().replace(
        "[sender]\n", '[sender]\nreply_to = "Help desk <help@journal.test>"\n'))
    settings = load_settings(root)
    edition = render_digest_edition(settings, articles_of(settings), "x")
    raw = MessageFactory(edition, settings).build(recipient(), date=SEND_DATE)
    message = email.message_from_bytes(raw, policy=policy.default)
    assert str(message["Reply-To"]) == "Help desk <help@journal.test>"
    assert message["Bcc"] is None
    # Settings made some other way (model_copy skips validation) still cannot
    # inject a header.
    from dataclasses import replace

    forged = replace(settings, sender=settings.sender.model_copy(
        update={"reply_to": "a@x.org\nBcc: victim@example.org"}))
    with pytest.raises(HeaderInjectionError) as caught:
        MessageFactory(edition, forged)
    assert caught.value.problems[0].field == "sender.reply_to"


TAKEAWAY_ONLY_IN_FRONTMATTER = """\
---
title: Sleep and blood pressure
date: 2026-10-05T08:00:00
summary: Short nights raise it.
takeaway: "Aim for **seven hours** a night."
---

People who sleep less than six hours have higher blood pressure.
"""


def test_frontmatter_takeaway_reaches_the_article_email(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "s", {"sleep.md": TAKEAWAY_ONLY_IN_FRONTMATTER,
                                          "salt.md": ARTICLE})
    by_slug = {a.slug: a for a in articles_of(settings)}
    edition = render_article_edition(settings, by_slug["sleep"], "x")
    assert 'class="takeaway"' in edition.html and "Key takeaway" in edition.html
    assert "<strong" in edition.html and "seven hours" in edition.html
    assert "Key takeaway: Aim for seven hours a night." in edition.text
    # A body with its own section keeps it, highlighted in place, once.
    salt = render_article_edition(settings, by_slug["salt"], "y")
    assert 'class="key-takeaway"' in salt.html and 'class="takeaway"' not in salt.html
    assert salt.text.count("Cutting salt lowers blood pressure") == 1


def test_unsubscribe_mailto_setting(tmp_path: Path) -> None:
    from dispatch.delivery.personalise import recipient_for

    root = tmp_path / "s"
    make_site(root)
    toml = root / "dispatch.toml"
    toml.write_text(toml.read_text() + 'unsubscribe_mailto = "leave@journal.test"\n')
    settings = load_settings(root)
    person = recipient_for(settings, b"k" * 32, "ed-1", 7, "ann@example.org", "Ann", row_id=42)
    assert person.unsubscribe_mailto is not None
    # The address carries the signed token of the outbox row (42), for
    # `dispatch bounces process`; the subject is a plain word.
    token = make_token(b"k" * 32, "unsubscribe", 42)
    assert token.startswith("42-")
    assert person.unsubscribe_mailto == f"mailto:leave+{token}@journal.test?subject=unsubscribe"
    edition = render_digest_edition(settings, articles_of(settings), "ed-1")
    raw = MessageFactory(edition, settings).build(person, date=SEND_DATE)
    header = str(email.message_from_bytes(raw, policy=policy.default)["List-Unsubscribe"])
    assert header == f"<{person.unsubscribe_url}>, <{person.unsubscribe_mailto}>"
    # Without the setting: https only.
    plain = recipient_for(make_site(tmp_path / "p"), b"k" * 32, "ed-1", 7, "a@b.org", "")
    assert plain.unsubscribe_mailto is None
    toml.write_text(toml.read_text().replace('"leave@journal.test"', '"x\\nBcc: y@z.org"'))
    with pytest.raises(ConfigError) as caught:
        load_settings(root)
    assert any(p.field == "email.unsubscribe_mailto" and p.line for p in caught.value.problems)


LONG = """\
---
title: Long things
date: 2026-10-06T08:00:00
summary: Long URLs, words, code and tables.
---

See https://www.ncbi.nlm.nih.gov/pmc/articles/PMC8976745/?report=classic&section=abstract-and-more
and Pneumonoultramicroscopicsilicovolcanoconiosis-hyperextendedwordwithoutanyspaces-again.

```
result = compute_something_with_a_very_long_function_name(argument_one, argument_two, arg3)
```

| Name | Dose | Route | Timing | Notes | Source | Year |
|------|------|-------|--------|-------|--------|------|
| Amlodipine | 5 mg | oral | morning | Swelling of the ankles is common | Trial A | 2021 |
"""


def test_text_part_keeps_78_columns_and_whole_urls(tmp_path: Path) -> None:
    settings = make_site(tmp_path / "s", {"long.md": LONG})
    text = render_article_edition(settings, articles_of(settings)[0], "x").text
    url = ("https://www.ncbi.nlm.nih.gov/pmc/articles/PMC8976745/"
           "?report=classic&section=abstract-and-more")
    assert url in text.split()  # never broken
    for line in text.splitlines():
        # Only a URL alone on its line may run past 78 columns.
        assert len(line) <= 78 or (" " not in line.strip() and "://" in line), line
    assert "Name: Amlodipine" in text and "Notes: Swelling of the ankles is common" in text
    assert "compute_something_with_a_very_long_function_name(" in text
    # Recipient URLs and long article URLs sit on lines of their own.
    assert "\nUnsubscribe:\n" in text and "\nView in your browser:\n" in text


def test_a_long_address_keeps_the_sent_text_part_within_78_columns(tmp_path: Path) -> None:
    # The address is only known per reader, after wrapping: it gets a line of its own.
    settings = make_site(tmp_path / "s")
    edition = render_digest_edition(settings, articles_of(settings), "x")
    address = "katherine.johnson.flight.research@langley-research-center.example.org"
    raw = MessageFactory(edition, settings).build(recipient("Kat", address), date=SEND_DATE)
    message = email.message_from_bytes(raw, policy=policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert address in text.splitlines()
    for line in text.splitlines():
        assert len(line) <= 78 or line in (address,) or (" " not in line and "://" in line), line
