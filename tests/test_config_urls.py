"""URLs in dispatch.toml and the variables that stand for them: every mistake
is reported when the file is read, together with the file's other mistakes,
at its line and key, with what was expected, and never quoting the URL (it
may hold a password)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.delivery.settings import load_delivery_settings
from dispatch.errors import ConfigError, Problem
from sitekit import SITE_TOML

SECRET = "S3cretpw"
"""The password in every URL here: no piece of it may reach a message."""
PIECES = ("S3cr", "cret", "etpw")


def write(root: Path, extra: str) -> list[str]:
    text = SITE_TOML + extra
    (root / "dispatch.toml").write_text(text, encoding="utf-8")
    return text.splitlines()


def problems_of(root: Path, environ: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_settings(root, environ or {})
    return list(info.value.problems)


def assert_no_secret(text: str) -> None:
    assert not any(piece in text for piece in PIECES), text


def test_a_bad_smtp_url_is_reported_with_the_rest_of_the_file(site_root: Path) -> None:
    """It was found only when delivery settings were read, after the whole
    file had validated: a user saw it on a second run."""
    lines = write(site_root, f'\n[delivery]\nsmtp_url = "smtp://ann:{SECRET}#x@mail.test:587"\n'
                             "connections = 0\n"
                             f'\n[bounces]\nmailbox = "imaps://ann@mail.test:{SECRET}/INBOX"\n')
    lines[2] = 'url = "not a url"'
    (site_root / "dispatch.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = {p.field: p for p in problems_of(site_root)}
    assert set(found) == {"site.url", "delivery.smtp_url", "delivery.connections",
                          "bounces.mailbox"}
    for field, problem in found.items():
        assert problem.path == "dispatch.toml" and problem.line is not None
        assert lines[problem.line - 1].startswith(field.split(".")[1] + " ="), problem
        assert_no_secret(str(problem))
    assert "could not be parsed" in found["delivery.smtp_url"].message
    assert "%23" in (found["delivery.smtp_url"].expected or "")
    assert "port" in found["bounces.mailbox"].message
    # Every command says all four at once, check and send alike.
    for args in (["check"], ["send", "--test", "me@example.org", "x"]):
        result = CliRunner().invoke(main, [*args, "--root", str(site_root)])
        assert result.exit_code != 0 and "Traceback" not in result.output
        for field in found:
            assert f": {field}: " in result.output, (args, result.output)
        assert_no_secret(result.output)


@pytest.mark.parametrize(("url", "says"), [
    (f"smtp://ann:{SECRET}@mail.test:99999", "port"),
    (f"smtp://ann:{SECRET}@mail.test:-1", "port"),
    (f"smtp://ann@mail.test:{SECRET}", "port"),
    (f"smtp://ann:{SECRET}@mail.test:25:26", "port"),
    (f"imap://ann:{SECRET}@mail.test", "scheme"),
    (f"{SECRET}:x@mail.test", "scheme"),
    (SECRET, "does not start with smtp://"),
    ("   ", "does not start with smtp://"),
    ("smtp://ann:S3c#retpw@mail.test", "could not be parsed"),
    ("smtp://ann:S3c/retpw@mail.test", "could not be parsed"),
    ("smtp://ann:S3c?retpw@mail.test", "could not be parsed"),
    ("smtp://ann:S3c[retpw@mail.test", "could not be parsed"),
    ("smtp://ann:S3c]retpw@mail.test", "could not be parsed"),
    ("smtp://ann:S3c\\tretpw@mail.test", "control character"),
    (f"smtp://:{SECRET}@mail.test", "no user name"),
    (f"smtp://ann:{SECRET}@", "no server host"),
    (f"smtp://ann:{SECRET}@mail.test/inbox", "after the server part"),
    (f"smtp://ann:{SECRET}@mail.test?tls={SECRET}", "tls"),
    (f"smtp://ann:{SECRET}@mail.test?timeout=0", "timeout"),
    (f"smtp://ann:{SECRET}@mail.test?timeout=nan", "timeout"),
    (f"smtp://ann:{SECRET}@mail.test?rate=nan", "rate in the SMTP URL"),
    (f"smtp://ann:{SECRET}@mail.test?connections={SECRET}", "connections in the SMTP URL"),
    (f"smtp://ann:{SECRET}@mail.test?speed=9", "unknown URL parameter(s) speed"),
])
def test_each_kind_of_bad_smtp_url_is_caught_on_load_without_quoting_it(
        site_root: Path, url: str, says: str) -> None:
    lines = write(site_root, f'\n[delivery]\nsmtp_url = "{url}"\n')
    (problem,) = problems_of(site_root)
    assert problem.field == "delivery.smtp_url" and problem.path == "dispatch.toml"
    assert problem.line is not None and lines[problem.line - 1].startswith("smtp_url =")
    assert says in problem.message and problem.expected, problem
    assert_no_secret(str(problem))
    # The same URL in the environment: the same words, blamed on the variable.
    write(site_root, "")
    (problem,) = problems_of(site_root, {"DISPATCH_SMTP_URL": url.replace("\\t", "\t")})
    assert problem.path == "environment variable DISPATCH_SMTP_URL" and problem.line is None
    assert says in problem.message
    assert_no_secret(str(problem))


def test_a_url_of_the_wrong_type_is_not_quoted(site_root: Path) -> None:
    write(site_root, f'\n[delivery]\nsmtp_url = ["smtp://ann:{SECRET}@mail.test"]\n'
                     f'\n[database]\nurl = {{ u = "postgresql://ann:{SECRET}@db/x" }}\n')
    found = problems_of(site_root)
    assert {p.field for p in found} == {"delivery.smtp_url", "database.url"}
    for problem in found:
        assert problem.line is not None and problem.expected
        assert_no_secret(str(problem))


def test_the_environment_and_the_file_are_reported_together(site_root: Path) -> None:
    write(site_root, "\n[delivery]\nconnections = 0\n")
    found = problems_of(site_root, {"DISPATCH_SMTP_URL": f"smtp://ann:{SECRET}@mail.test:x",
                                    "DISPATCH_BOUNCE_MAILBOX": "ftp://mail.test/x"})
    assert [p.field or p.path for p in found] == [
        "delivery.connections", "environment variable DISPATCH_SMTP_URL",
        "environment variable DISPATCH_BOUNCE_MAILBOX"]
    assert "unknown scheme" in found[2].message
    assert_no_secret("\n".join(map(str, found)))


@pytest.mark.parametrize("url", [
    "smtp://ann:S3cr%23t%2Fpw%40x%3Ay@mail.test:2525",  # every special character encoded
    "smtp://ann:S3cr@etpw@mail.test",  # an "@" in the password: the last one ends it
    "smtp://ann:p%C3%A4ss@xn--mnchen-3ya.test",
    "smtps://ann@mail.test",
    "smtp://[::1]:2525?tls=none&timeout=0.5",
])
def test_good_urls_still_load(site_root: Path, url: str) -> None:
    write(site_root, f'\n[delivery]\nsmtp_url = "{url}"\n')
    config = load_delivery_settings(load_settings(site_root, {}), {})
    assert config.transport == "smtp" and config.smtp is not None


def test_an_empty_smtp_url_means_none(site_root: Path) -> None:
    write(site_root, '\n[delivery]\nsmtp_url = ""\n')
    config = load_delivery_settings(load_settings(site_root, {"DISPATCH_SMTP_URL": ""}),
                                    {"DISPATCH_SMTP_URL": ""})
    assert config.transport == "capture" and config.smtp is None
