"""dispatch.toml as one typed configuration: every section, key and value is
checked when the file is read, with its line and the nearest valid name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.errors import ConfigError
from dispatch.reference import END, START, settings_reference
from dispatch.sections import SECTIONS, SectionModel, section_model
from dispatch.social.networks import NETWORKS, network, transports
from dispatch.sourcelines import toml_lines
from sitekit import SITE_TOML

REPO = Path(__file__).resolve().parent.parent


def misspelt(name: str) -> str:
    """``connections`` -> ``conections``: one letter left out near the middle."""
    cut = max(1, len(name) // 2)
    return name[:cut] + name[cut + 1:]


def scalar_fields(model: type[SectionModel]) -> list[str]:
    return [n for n in model.model_fields if n not in model.flatten]


def check(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", "--root", str(root)])
    return result.exit_code, result.output


def write(root: Path, extra: str) -> list[str]:
    text = SITE_TOML + extra
    (root / "dispatch.toml").write_text(text, encoding="utf-8")
    return text.splitlines()


# --- every section, from the registry ---------------------------------------------------

@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_a_misspelt_key_in_every_section_is_reported_with_line_and_suggestion(
        site_root: Path, section: str) -> None:
    model = section_model(section)
    real = scalar_fields(model)[0]
    wrong = misspelt(real)
    assert wrong not in model.model_fields
    text = SITE_TOML.replace(f"[{section}]\n", f"[{section}]\n{wrong} = 1\n")
    if text == SITE_TOML:
        text += f"\n[{section}]\n{wrong} = 1\n"
    (site_root / "dispatch.toml").write_text(text, encoding="utf-8")
    line = text.splitlines().index(f"{wrong} = 1") + 1
    code, output = check(site_root)
    assert code == 1
    assert (f"dispatch.toml:{line}: {section}.{wrong}: unknown key {wrong!r} "
            f"(did you mean {real!r}?)") in output
    assert "Traceback" not in output


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_key_of_every_section_misspelt_is_caught_on_load(
        site_root: Path, section: str) -> None:
    model = section_model(section)
    fields = scalar_fields(model)
    body = "".join(f"{misspelt(f)} = 1\n" for f in fields)
    text = (SITE_TOML.replace(f"[{section}]\n", f"[{section}]\n{body}")
            if f"[{section}]\n" in SITE_TOML else SITE_TOML + f"\n[{section}]\n{body}")
    (site_root / "dispatch.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(site_root, environ={})
    reported = {p.field: p for p in caught.value.problems}
    lines = text.splitlines()
    for real in fields:
        problem = reported[f"{section}.{misspelt(real)}"]
        assert problem.line == lines.index(f"{misspelt(real)} = 1") + 1
        assert problem.expected is not None and problem.expected.startswith("did you mean")


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_a_misspelt_section_is_reported_with_line_and_suggestion(
        site_root: Path, section: str) -> None:
    wrong = misspelt(section)
    assert wrong not in SECTIONS
    lines = write(site_root, f"\n[{wrong}]\nanything = 1\n")
    code, output = check(site_root)
    assert code == 1
    line = lines.index(f"[{wrong}]") + 1
    assert (f"dispatch.toml:{line}: {wrong}: unknown section [{wrong}] "
            f"(did you mean {section!r}?)") in output


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_misspelt_key_in_every_network_table_is_reported(site_root: Path, name: str) -> None:
    own = network(name).transport
    transport = own or transports()["capture"]
    required = "".join(
        f'{key} = "{ {"chat_id": "@channel_name", "handle": "a.bsky.social"}.get(key, "x")}"\n'
        for key, info in transport.options.model_fields.items() if info.is_required())
    own_key = next(iter(transport.options.model_fields), None)
    typo = f"{misspelt(own_key)} = 1\n" if own_key else ""
    lines = write(site_root, f'\n[social.{name}]\ntransport = "{transport.name}"\n{required}'
                  f"limt = 300\n{typo}")
    code, output = check(site_root)
    assert code == 1
    assert (f"dispatch.toml:{lines.index('limt = 300') + 1}: social.{name}.limt: unknown key "
            "'limt' (did you mean 'limit'?)") in output
    if own_key:
        assert (f"dispatch.toml:{lines.index(typo.strip()) + 1}: social.{name}."
                f"{misspelt(own_key)}: unknown key") in output


# --- the cases from the issues ----------------------------------------------------------

def test_conections_and_a_misspelt_sender_section_fail_check(site_root: Path) -> None:
    text = SITE_TOML.replace("[sender]", "[sendr]") + "\n[delivery]\nconections = 4\n"
    (site_root / "dispatch.toml").write_text(text, encoding="utf-8")
    lines = text.splitlines()
    code, output = check(site_root)
    assert code == 1
    assert (f"dispatch.toml:{lines.index('[sendr]') + 1}: sendr: unknown section [sendr] "
            "(did you mean 'sender'?)") in output
    assert (f"dispatch.toml:{lines.index('conections = 4') + 1}: delivery.conections: "
            "unknown key 'conections' (did you mean 'connections'?)") in output


def test_wrong_types_and_bad_values_are_reported_together(site_root: Path) -> None:
    lines = write(site_root, """
[delivery]
connections = "4"
rate = -1
error_budget = 2

[feeds]
entries = 0
hub = "nope"

[social]
on_publish = "sometimes"
hashtags = true

[social.x]
limit = 10

[email]
allow_clip = "yes"
image_aspect = "wide"

[web]
public_url = "journal.test"
""")
    lines[lines.index('url = "https://journal.test"')] = 'url = "journal"'
    (site_root / "dispatch.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(site_root, environ={})
    found = {p.field: p.line for p in caught.value.problems}
    expected = {"site.url": 'url = "journal"', "delivery.connections": 'connections = "4"',
                "delivery.rate": "rate = -1", "delivery.error_budget": "error_budget = 2",
                "feeds.entries": "entries = 0", "feeds.hub": 'hub = "nope"',
                "social.on_publish": 'on_publish = "sometimes"',
                "social.hashtags": "hashtags = true", "social.x.limit": "limit = 10",
                "email.allow_clip": 'allow_clip = "yes"',
                "email.image_aspect": 'image_aspect = "wide"',
                "web.public_url": 'public_url = "journal.test"'}
    for field, written in expected.items():
        assert found.get(field) == lines.index(written) + 1, (field, found)
    code, output = check(site_root)
    assert code == 1 and output.count("dispatch.toml:") == len(expected)


def test_an_invalid_sender_is_a_line_error_in_check(site_root: Path) -> None:
    text = SITE_TOML.replace('email = "news@journal.test"', 'email = "journal-at-clinic"')
    (site_root / "dispatch.toml").write_text(text, encoding="utf-8")
    line = text.splitlines().index('email = "journal-at-clinic"') + 1
    code, output = check(site_root)
    assert code == 1
    assert f"dispatch.toml:{line}: sender.email: 'journal-at-clinic' is not allowed" in output
    assert "Traceback" not in output


def test_an_invalid_sender_stops_send_before_anything_is_queued(example_site: Path) -> None:
    toml = example_site / "dispatch.toml"
    text = toml.read_text(encoding="utf-8")
    good = 'email = "journal@northfield-clinic.example"'
    assert good in text
    toml.write_text(text.replace(good, 'email = "journal-at-clinic"'), encoding="utf-8")
    line = toml.read_text().splitlines().index('email = "journal-at-clinic"') + 1
    result = CliRunner().invoke(main, ["send", "handwashing-and-colds", "--audience", "weekly",
                                       "--deliver", "--root", str(example_site)])
    assert result.exit_code == 1
    assert f"dispatch.toml:{line}: sender.email:" in result.output
    assert "internal error" not in result.output
    database = example_site / ".dispatch" / "dispatch.db"
    if database.exists():  # nothing may have been queued, let alone leased
        with sqlite3.connect(database) as db:
            tables = {r[0] for r in db.execute("select name from sqlite_master")}
            assert "outbox" not in tables or db.execute(
                "select count(*) from outbox").fetchone()[0] == 0


def test_the_example_site_checks_clean() -> None:
    code, output = check(REPO)
    assert code == 0, output
    assert "dispatch.toml" not in output


# --- line tracking, secrets, documentation ----------------------------------------------

def test_toml_lines_steps_over_multiline_values() -> None:
    text = '''[a]
x = """
y = 1
"""
list = [
  "z = 2",
  { q = 1 },
]
"quoted key" = 3
b.c = 4

[[items]]
k = 1
[[items]]
k = 2
'''
    lines = toml_lines(text)
    assert lines.line(("a", "x")) == 2
    assert lines.line(("a", "y")) == 1  # inside the string: only its table is known
    assert lines.line(("a", "list")) == 5
    assert lines.line(("a", "quoted key")) == 9
    assert lines.line(("a", "b", "c")) == 10
    assert lines.line(("items", 0, "k")) == 13
    assert lines.line(("items", 1, "k")) == 15


def test_secrets_are_masked_in_every_repr(site_root: Path) -> None:
    write(site_root, '\n[delivery]\nsmtp_url = "smtp://user:hunter2@mail.test:587"\n'
          '\n[database]\nurl = "postgresql://app:s3cret@db.test/app"\n')
    settings = load_settings(site_root, environ={})
    for shown in (repr(settings), repr(settings.delivery), repr(settings.sections)):
        assert "hunter2" not in shown and "s3cret" not in shown
    assert "mail.test" in repr(settings.delivery)


def test_environment_overrides_the_file(site_root: Path) -> None:
    write(site_root, '\n[database]\nurl = "sqlite:///from-file.db"\n')
    settings = load_settings(site_root, environ={"DISPATCH_DATABASE_URL": "sqlite:///env.db"})
    assert settings.database_url == "sqlite:///env.db"


def test_readme_documents_every_registered_setting() -> None:
    """Every section key, network, transport (with its keys) and feed format:
    the README holds the reference generated from the registries."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(START), readme.index(END) + len(END)
    assert readme[start:end] == settings_reference(), \
        "README settings reference is stale: paste `python -m dispatch.reference`"
    reference = settings_reference()
    for section in SECTIONS:
        for field in scalar_fields(section_model(section)):
            assert f"`{section}.{field}`" in reference
    for name, transport in transports().items():
        assert f'`transport = "{name}"`' in reference
        for key in transport.options.model_fields:
            assert f"`social.<name>.{key}`" in reference
    for name in NETWORKS:
        assert f"| `{name}` | {network(name).limit} |" in reference


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('title = "Test Journal"', 'title = "Test\\nJournal"',
     "dispatch.toml:2: site.title: 'Test\\nJournal' is not allowed (expected one line"),
    ('timezone = "Europe/London"', 'timezone = "Europe/London"\nlanguage = "English!"',
     "dispatch.toml:5: site.language: 'English!' is not allowed (expected a BCP 47 "
     "language tag"),
    ('timezone = "Europe/London"', 'timezone = "Europe/London"\ndescription = "a\\rb"',
     "dispatch.toml:5: site.description: 'a\\rb' is not allowed (expected one line"),
])
def test_site_text_that_would_break_headers_or_posts_is_refused(
        tmp_path: Path, old: str, new: str, expected: str) -> None:
    """A title with a line break was only caught deep in rendering, as a
    list_id problem of a made-up edition; a malformed language went into the
    feeds and every Bluesky post (which the network refuses)."""
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    (root / "dispatch.toml").write_text(SITE_TOML.replace(old, new, 1), encoding="utf-8")
    code, output = check(root)
    assert code == 1 and expected in output, output


def test_a_social_language_must_be_a_language_tag(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    lines = write(root, '\n[social.x]\nlanguage = "en_GB"\n')
    code, output = check(root)
    number = lines.index('language = "en_GB"') + 1
    assert code == 1 and f"dispatch.toml:{number}: social.x.language: 'en_GB' is not " \
        "allowed (expected a BCP 47 language tag" in output, output
    write(root, '\n[social.x]\nlanguage = "en-GB"\n')
    assert load_settings(root).social


def test_each_bad_list_name_is_reported_on_its_own_line(site_root: Path) -> None:
    lines = write(site_root, """
[subscribers.lists]
weekly = "subscribers.csv"
"Bad List!" = "subscribers.csv"
"a b" = { file = "subscribers.csv", public = true }
""")
    code, output = check(site_root)
    assert code == 1
    for name in ("Bad List!", "a b"):
        line = next(i for i, text in enumerate(lines, 1) if text.startswith(f'"{name}"'))
        assert (f'dispatch.toml:{line}: subscribers.lists."{name}": {name!r} is not allowed '
                "(expected a list name: letters, digits") in output, output
    assert "subscribers.lists.weekly" not in output  # the good name is not blamed
    assert "Traceback" not in output
