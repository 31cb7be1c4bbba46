"""schedules.yaml validation: every mistake, with its line, all at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.sitekit import write_site

from dispatch.config import load_settings
from dispatch.errors import Problem
from dispatch.schedule import firings
from dispatch.schedule.model import At, Cron, Every, OnPublish, QuietHours
from dispatch.schedule.sitefile import check_text, context_problems
from dispatch.schedule.spec import parse_schedules
from dispatch.store.engine import open_store
from dispatch.subscribers import add_subscriber

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def problems_of(text: str) -> list[Problem]:
    return parse_schedules(textwrap.dedent(text))[1]


def lines(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def test_invalid_cron_names_file_line_field_and_expectation() -> None:
    found = problems_of("""\
        timezone: Europe/London
        schedules:
          - id: a
            kind: feeds
            every: 1h
          - id: b
            kind: feeds
            every: 2h
          - id: weekly
            kind: digest
            cron: "0 8 * * MONDAY"
            audience: [weekly]
        """)
    assert len(found) == 1
    text = str(found[0])
    assert text.startswith('schedules.yaml:11: schedules[2].cron: "0 8 * * MONDAY" is not a cron '
                           'expression: weekday field: "MONDAY" is neither a number 0-7 nor a '
                           "name (sun mon tue wed thu fri sat) (expected five fields")


def test_every_mistake_is_reported_at_once_in_line_order() -> None:
    found = problems_of("""\
        timezone: Mars/Olympus
        schedules:
          - id: one
            kind: digest
            cron: "0 8 * *"
            audience: [weekly]
            subjct: "Hello"
          - id: one
            kind: feeds
            every: 1h
          - id: late
            kind: article
            on_publish: true
            delay: -2h
            audience: [all]
          - id: soon
            kind: social
            on_publish: true
            delay: soonish
          - id: both
            kind: feeds
            cron: "0 6 * * *"
            every: 6h
          - id: neither
            kind: feeds
          - id: zone
            kind: feeds
            every: 1h
            timezone: Europe/Londn
        """)
    text = lines(found)
    assert text == sorted(text, key=lambda t: int(t.split(":")[1]))
    expected_fragments = [
        ("schedules.yaml:1: timezone:", '"Mars/Olympus" is not a known timezone'),
        ("schedules.yaml:5: schedules[0].cron:", "is not a cron expression"),
        ("schedules.yaml:7: schedules[0].subjct:", 'unknown key "subjct"; did you mean "subject"?'),
        ("schedules.yaml:8: schedules[1].id:", 'id "one" is already used on line 3'),
        ("schedules.yaml:14: schedules[2].delay:", '"-2h" is negative'),
        ("schedules.yaml:19: schedules[3].delay:", '"soonish" is not a duration'),
        ("schedules.yaml:23: schedules[4].every:", "has two triggers (cron, every)"),
        ("schedules.yaml:24: schedules[5]:", 'schedule "neither" has no trigger'),
        ("schedules.yaml:29: schedules[6].timezone:", '"Europe/Londn" is not a known timezone'),
    ]
    assert len(text) == len(expected_fragments), text
    for (prefix, fragment), got in zip(expected_fragments, text, strict=True):
        assert got.startswith(prefix) and fragment in got, got


def test_yaml_syntax_error_has_a_line() -> None:
    found = problems_of("""\
        schedules:
          - id: a
            kind: feeds
            every: [1h
          - id: b
        """)
    # Reported where the [ opens, not on the next entry where YAML gave up.
    assert [str(p) for p in found] == [
        "schedules.yaml:4: not valid YAML: the [ opened on this line is never closed (YAML gave "
        "up on line 5: expected ',' or ']', but got ':') (expected a closing ])"]


def test_other_yaml_errors_keep_the_line_where_yaml_gave_up() -> None:
    found = problems_of("""\
        schedules:
          - id: a
            kind: feeds
           every: 1h
        """)
    assert len(found) == 1 and found[0].line == 4 and "not valid YAML" in found[0].message


def test_a_key_written_twice_is_reported_not_silently_dropped() -> None:
    found = problems_of("""\
        schedules:
          - id: a
            kind: feeds
            every: 1h
            every: 2h
        """)
    assert lines(found) == ['schedules.yaml:5: schedules[0].every: "every" is written twice; only '
                            "one counts (expected each key once)"]


def test_valid_file_builds_frozen_schedules_with_defaults() -> None:
    parsed, found = parse_schedules(textwrap.dedent("""\
        timezone: America/New_York
        max_lateness: 2h
        quiet_hours: 21:00-07:00
        schedules:
          - id: weekly
            kind: digest
            cron: "0 9 * * 1-5"
            audience: weekly
            template: digest
          - id: alert
            kind: article
            on_publish: yes
            delay: 1h30m
            audience: [all]
            max_lateness: 1d
            timezone: Europe/Paris
          - id: once
            kind: digest
            at: 2027-01-04 09:00
            audience: [all]
          - id: feeds
            kind: feeds
            every: 12h
        """), "UTC")
    assert found == []
    weekly, alert, once, feeds = parsed.schedules
    assert isinstance(weekly.trigger, Cron)
    assert weekly.trigger.normalised == "0 9 * * mon,tue,wed,thu,fri"
    assert weekly.audience == ("weekly",) and weekly.template == "digest.html"
    assert weekly.max_lateness == timedelta(hours=2)
    # 21:00 is read as a clock time, not as YAML 1.1's base-60 integer 1260.
    assert weekly.quiet_hours == QuietHours(datetime(1, 1, 1, 21).time(),
                                            datetime(1, 1, 1, 7).time())
    assert alert.trigger == OnPublish(timedelta(hours=1, minutes=30))
    assert alert.tz.key == "Europe/Paris" and alert.max_lateness == timedelta(days=1)
    assert isinstance(once.trigger, At)
    assert once.trigger.when.utcoffset() == timedelta(hours=-5)  # read in the file's zone
    assert feeds.trigger == Every(timedelta(hours=12))


@pytest.mark.parametrize(("snippet", "fragment"), [
    ("kind: article\n    cron: '0 8 * * *'\n    audience: [a]", "fires on publish"),
    ("kind: digest\n    on_publish: true\n    audience: [a]", "needs a time to go out"),
    ("kind: digest\n    cron: '0 8 * * *'", "needs an audience"),
    ("kind: feeds\n    every: 1h\n    delay: 1h", "delay only applies to on_publish"),
    ("kind: feeds\n    every: 1m", '"1m" is too short'),
    ("kind: digest\n    cron: '0 8 * * *'\n    audience: [a]\n    max_articles: many",
     '"many" is not a whole number'),
    ("kind: newsletter\n    every: 1h", '"newsletter" is not allowed'),
    ("kind: digest\n    cron: '0 8 * * *'\n    audience: [a]\n    subject: '{{ articles | '",
     "is not a valid template"),
    ("kind: feeds\n    every: 1h\n    quiet_hours: late", '"late" is not a time window'),
])
def test_rules_across_fields(snippet: str, fragment: str) -> None:
    found = problems_of(f"schedules:\n  - id: x\n    {snippet}\n")
    assert any(fragment in str(p) for p in found), lines(found)
    assert all(p.line is not None and p.field for p in found)


def test_crontab_both_day_and_weekday_is_a_warning() -> None:
    parsed, found = parse_schedules("schedules:\n  - id: x\n    kind: feeds\n"
                                    "    cron: '0 8 1 * mon'\n")
    assert len(parsed.schedules) == 1
    assert [p.is_error for p in found] == [False]
    # crontab(5): either day field may match; the warning says so and how
    # to write "the first Monday".
    assert "fires on every day that matches EITHER one" in found[0].message
    assert found[0].expected == '"0 9 * * mon#1" for only the first Monday of the month'


def _site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site")


def test_audience_template_and_past_at_are_checked_against_the_site(tmp_path: Path) -> None:
    root = _site(tmp_path)
    settings = load_settings(root)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    add_subscriber(store, "a@example.com", "weekly", NOW)
    text = textwrap.dedent("""\
        schedules:
          - id: good
            kind: digest
            cron: "0 8 * * mon"
            audience: [weekly]
          - id: typo
            kind: digest
            cron: "0 8 * * mon"
            audience: [weekley]
            template: fancy
          - id: past
            kind: digest
            at: 2026-01-01 09:00
            audience: [weekly]
        """)
    kept, found = check_text(text, settings, NOW, store)
    # A one-off in the past that never fired is an error: left out, like the typo.
    assert [s.id for s in kept.schedules] == ["good"]
    text_found = lines(found)
    assert text_found[0] == ('schedules.yaml:9: schedules[1].audience: there is no subscriber '
                             'list "weekley" (expected one of weekly)')
    assert text_found[1].startswith('schedules.yaml:10: schedules[1].template: there is no email '
                                    'template "fancy.html"')
    assert text_found[2] == ("schedules.yaml:13: schedules[2].at: 2026-01-01 09:00 GMT is in "
                             "the past and this one-off never fired, so it would never be sent "
                             "(expected a future date and time (or remove the entry))")
    # With no subscriber lists at all, audiences cannot be checked: one warning.
    empty = open_store(f"sqlite:///{tmp_path / 'empty.db'}")
    _kept, found = check_text(text, settings, NOW, empty)
    warnings = [p for p in found if "cannot be checked" in p.message]
    assert len(warnings) == 1 and not warnings[0].is_error
    store.dispose()
    empty.dispose()


def test_context_checks_need_no_store() -> None:
    parsed, _ = parse_schedules("schedules:\n  - id: x\n    kind: digest\n    cron: '0 8 * * *'\n"
                                "    audience: [weekly]\n")
    settings = load_settings(REPO)
    found = context_problems(parsed.schedules, settings, None, NOW)
    assert len(found) == 1 and not found[0].is_error


def test_example_schedules_yaml_passes_dispatch_check(example_site: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "dispatch", "check", "--root",
                             str(example_site)], capture_output=True, text=True, timeout=120)
    schedule_lines = [line for line in result.stderr.splitlines() if "schedules.yaml" in line]
    assert all("warning" in line for line in schedule_lines), schedule_lines
    parsed, found = parse_schedules((REPO / "schedules.yaml").read_text(), "Europe/London")
    assert not [p for p in found if p.is_error]
    kinds = {s.kind for s in parsed.schedules}
    triggers = {type(s.trigger) for s in parsed.schedules}
    # The example documents every feature: each kind, each trigger, pausing,
    # filters, quiet hours and a per-schedule timezone.
    assert kinds == {"digest", "article", "social", "feeds"}
    assert triggers == {Cron, At, Every, OnPublish}
    assert any(not s.enabled for s in parsed.schedules)
    assert any(s.categories for s in parsed.schedules)
    assert any(s.tags for s in parsed.schedules)
    assert any(s.tz.key != "Europe/London" for s in parsed.schedules)
    assert all(s.quiet_hours is not None for s in parsed.schedules)


def test_dispatch_check_reports_a_broken_schedules_yaml(example_site: Path) -> None:
    (example_site / "schedules.yaml").write_text(
        "schedules:\n  - id: x\n    kind: digest\n    cron: '0 8 * * MONDAY'\n"
        "    audience: [weekly]\n    sned_at: 9\n")
    result = subprocess.run([sys.executable, "-m", "dispatch", "check", "--root",
                             str(example_site)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert 'schedules.yaml:4: schedules[0].cron: "0 8 * * MONDAY" is not a cron' in result.stderr
    assert "schedules.yaml:6: schedules[0].sned_at: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_days_29_to_31_warn_and_last_is_accepted() -> None:
    parsed, found = parse_schedules("schedules:\n  - id: x\n    kind: feeds\n"
                                    "    cron: '0 8 31 * *'\n  - id: y\n    kind: feeds\n"
                                    "    cron: '0 8 last * *'\n")
    assert [s.id for s in parsed.schedules] == ["x", "y"]
    assert len(found) == 1 and not found[0].is_error and found[0].line == 4
    assert "months without that day are skipped" in found[0].message


EXAMPLE_LINES = (REPO / "schedules.yaml").read_text().splitlines()


@settings(max_examples=150, deadline=None)
@given(drop=st.sets(st.integers(0, len(EXAMPLE_LINES) - 1), max_size=6),
       noise=st.text(alphabet="abc:-[]{}#'\"\n 0123456789!&*|>%@`", max_size=40),
       where=st.integers(0, len(EXAMPLE_LINES)))
def test_no_edit_of_the_example_makes_validation_crash(drop: set[int], noise: str,
                                                       where: int) -> None:
    """Staff will save every kind of half-edited file: each must come back as
    problems with lines, never as an exception."""
    lines_ = [line for i, line in enumerate(EXAMPLE_LINES) if i not in drop]
    lines_.insert(where, noise)
    parsed, found = parse_schedules("\n".join(lines_), "Europe/London")
    assert all(isinstance(p, Problem) and p.path == "schedules.yaml" for p in found)
    assert all(p.line is None or 1 <= p.line <= len(lines_) + noise.count("\n") + 1
               for p in found)
    assert len({s.id for s in parsed.schedules}) == len(parsed.schedules)


def test_social_networks_must_be_configured(tmp_path: Path) -> None:
    root = _site(tmp_path)
    with (root / "dispatch.toml").open("a") as toml:
        toml.write('\n[social]\non_publish = true\n\n'
                   '[social.mastodon]\nnetwork = "mastodon"\ntransport = "capture"\n')
    text = ("schedules:\n  - id: s\n    kind: social\n    on_publish: true\n"
            "    networks: [mastodon, myspace]\n")
    kept, found = check_text(text, load_settings(root), NOW)
    assert kept.schedules == ()
    assert [str(p) for p in found] == [
        "schedules.yaml:3: schedules[0].kind: warning: [social] on_publish is true in "
        "dispatch.toml, so posts are queued as soon as an article is published and this "
        "schedule's timing and filters have no effect (expected on_publish = false under "
        "[social])",
        "schedules.yaml:5: schedules[0].networks: there is no [social.myspace] in dispatch.toml "
        "(expected one of mastodon)"]


def test_several_mistakes_in_one_entry_are_all_reported(tmp_path: Path) -> None:
    """A bad field no longer hides the entry's other mistakes: the trigger
    count, the kind rules and the checks against the site still run."""
    root = _site(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    add_subscriber(store, "a@example.com", "weekly", NOW)
    kept, found = check_text(textwrap.dedent("""\
        schedules:
          - id: x
            kind: digest
            on_publish: true
            every: 1h
            delay: soon
            audience: [weekley]
            template: fancy
            max_articles: many
          - id: y
            kind: feeds
            cron: "0 8 * * MONDAY"
            audience: [weekly]
            subject: Hello
        """), load_settings(root), NOW, store)
    assert kept.schedules == ()
    text = lines(found)
    expected = [
        ('schedules.yaml:5: schedules[0].every: schedule "x" has two triggers '
         "(on_publish, every)"),
        'schedules.yaml:6: schedules[0].delay: "soon" is not a duration',
        'schedules.yaml:7: schedules[0].audience: there is no subscriber list "weekley"',
        'schedules.yaml:8: schedules[0].template: there is no email template "fancy.html"',
        'schedules.yaml:9: schedules[0].max_articles: "many" is not a whole number',
        'schedules.yaml:12: schedules[1].cron: "0 8 * * MONDAY" is not a cron expression',
        ("schedules.yaml:13: schedules[1].audience: a feeds schedule sends no email, so "
         "audience has no effect"),
        ("schedules.yaml:14: schedules[1].subject: a feeds schedule sends no email, so "
         "subject has no effect"),
    ]
    assert len(text) == len(expected), text
    for prefix, got in zip(expected, text, strict=True):
        assert got.startswith(prefix), got
    store.dispose()


def test_a_broken_id_or_kind_still_gets_the_other_checks() -> None:
    found = lines(problems_of("""\
        schedules:
          - id: Weekly Digest
            kind: newsletter
            cron: "0 8 * * mon"
            every: 1d
        """))
    assert any('"Weekly Digest" is not a valid id' in t for t in found)
    assert any('"newsletter" is not allowed' in t for t in found)
    assert any('schedule "Weekly Digest" has two triggers (cron, every)' in t for t in found)


@pytest.mark.parametrize(("value", "fragment"), [
    ("99999999999d", '"99999999999d" is out of range (at most 366d)'),
    ("999999999999999999999999s", "is out of range"),
    ("400d", '"400d" is out of range'),
])
def test_a_huge_duration_is_out_of_range_not_a_crash(value: str, fragment: str) -> None:
    found = problems_of(f"""\
        schedules:
          - id: x
            kind: article
            on_publish: true
            delay: {value}
            audience: [all]
        """)
    assert len(found) == 1 and found[0].line == 5 and fragment in str(found[0]), lines(found)


def test_delay_zero_means_no_delay_and_max_lateness_zero_is_explained() -> None:
    parsed, found = parse_schedules(textwrap.dedent("""\
        schedules:
          - id: now
            kind: article
            on_publish: true
            delay: 0
            audience: [all]
          - id: strict
            kind: feeds
            every: 1h
            max_lateness: 0
        """))
    assert [s.id for s in parsed.schedules] == ["now"]
    assert parsed.schedules[0].trigger == OnPublish(timedelta(0))
    assert lines(found) == ['schedules.yaml:10: schedules[1].max_lateness: "0" is too short '
                            "(expected at least 1m)"]


SUBJECTS = """\
schedules:
  - id: weekly
    kind: digest
    cron: "0 8 * * mon"
    audience: [weekly]
    subject: "{{ site.titel }}: {{ articles | length }} new"
  - id: alerts
    kind: article
    on_publish: true
    audience: [weekly]
    subject: "{{ artcles | length }} new"
  - id: fine
    kind: digest
    cron: "0 9 * * mon"
    audience: [weekly]
    subject: "{{ site.title }}: {{ articles | length }} new, {{ article.title }} first"
    intro: "Hello {{ name }}"
"""


def test_a_subject_that_cannot_be_filled_in_is_a_mistake_found_before_sending(
        tmp_path: Path) -> None:
    root = _site(tmp_path)
    kept, found = check_text(SUBJECTS, load_settings(root), NOW)
    # Left out (so a reload keeps the previous version), not failed at every firing.
    assert [s.id for s in kept.schedules] == ["fine"]
    text = [t for t in lines(found) if "cannot be checked" not in t]
    assert text == [
        'schedules.yaml:6: schedules[0].subject: "{{ site.titel }}: {{ articles | length }} new" '
        'cannot be filled in: there is no "site.titel"; did you mean "site.title"? (expected '
        "placeholders such as {{ site.title }}, {{ articles | length }} or {{ article.title }})",
        'schedules.yaml:11: schedules[1].subject: "{{ artcles | length }} new" cannot be filled '
        'in: there is no placeholder "artcles"; did you mean "articles"? (expected placeholders '
        "such as {{ site.title }}, {{ articles | length }} or {{ article.title }})",
        "schedules.yaml:17: schedules[2].intro: warning: intro is plain text: {{ }} placeholders "
        "are shown as written (expected plain text (placeholders work in subject))",
    ]


def test_dispatch_check_fails_on_a_subject_typo(example_site: Path) -> None:
    text = (example_site / "schedules.yaml").read_text()
    assert "{{ site.title }}: {{ articles | length }} new this week" in text
    (example_site / "schedules.yaml").write_text(text.replace(
        "{{ site.title }}: {{ articles | length }} new this week",
        "{{ site.titel }}: {{ artcles | length }} new this week"))
    result = subprocess.run([sys.executable, "-m", "dispatch", "check", "--root",
                             str(example_site)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert ("schedules[0].subject: \"{{ site.titel }}: {{ artcles | length }} new this week\" "
            "cannot be filled in") in result.stderr
    assert "Traceback" not in result.stderr


def test_an_at_that_already_fired_is_not_warned_about(tmp_path: Path) -> None:
    root = _site(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    add_subscriber(store, "a@example.com", "weekly", NOW)
    text = textwrap.dedent("""\
        schedules:
          - id: once
            kind: digest
            at: 2026-11-02 09:00
            audience: [weekly]
        """)
    _kept, found = check_text(text, load_settings(root), NOW, store)
    assert [(p.line, p.is_error) for p in found if "in the past" in p.message] == [(4, True)]
    firings.claim(store, "once", datetime(2026, 11, 2, 9, tzinfo=UTC), "", NOW, status="sent")
    _kept, found = check_text(text, load_settings(root), NOW, store)
    assert [str(p) for p in found] == []
    store.dispose()


def test_an_at_the_scheduler_knew_before_its_time_is_not_an_error(tmp_path: Path) -> None:
    """Due while dispatch was down: the scheduler records it (sent late or
    missed), so the file is not wrong and must not fall back to an old copy."""
    root = _site(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    add_subscriber(store, "a@example.com", "weekly", NOW)
    text = ("schedules:\n  - id: once\n    kind: digest\n    at: 2026-11-02 09:00\n"
            "    audience: [weekly]\n")
    firings.remember(store, {"once": "at"}, datetime(2026, 11, 1, tzinfo=UTC))
    kept, found = check_text(text, load_settings(root), NOW, store)
    assert [s.id for s in kept.schedules] == ["once"] and found == []
    store.dispose()


@pytest.mark.parametrize(("text", "expected"), [
    ("schedules:\n  - id: a\n\tkind: digest\n",
     "schedules.yaml:3: not valid YAML: this line has a tab: use spaces, not a tab, for "
     "indentation"),
    ("schedules:\n  - id: a\n    kind:digest\n    cron: '0 8 * * *'\n    audience: [a]\n",
     'schedules.yaml:3: not valid YAML: "kind:digest" needs a space after the colon '
     '(expected "kind: digest")'),
    ("schedules:\n  - id: a\n    cron: '0 8 * * *'\n    audience: [a]\n    kind:digest\n"
     "  - id: b\n    kind: feeds\n    every: 1h\n",
     'schedules.yaml:5: not valid YAML: "kind:digest" needs a space after the colon'),
    ("schedules:\n  - id: a\n    kind: feeds\n    every: 1h\n  - id: weekly\n   kind: digest\n"
     "    every: 1h\n",
     "schedules.yaml:6: not valid YAML: this line is indented differently from the lines above "
     'it, which breaks schedule "weekly" (the entry starting on line 5)'),
    ("schedules:\n  - id: a\n    kind: feeds\n     every: 1h\n",
     "schedules.yaml:4: not valid YAML: this line is indented differently from the lines above "
     'it, which breaks schedule "a" (the entry starting on line 2)'),
])
def test_yaml_mistakes_in_words_staff_understand(text: str, expected: str) -> None:
    _, found = parse_schedules(text)
    assert len(found) == 1
    assert str(found[0]).startswith(expected), str(found[0])
    assert "token" not in str(found[0]) and "simple key" not in str(found[0])


@pytest.mark.parametrize(("text", "line"), [
    ("schedules:\n  - &x [*x]\n", 2),
    ("timezone: UTC\nschedules: &s\n  - id: a\n    kind: feeds\n    every: 1h\n    more: *s\n", 2),
])
def test_an_alias_inside_its_own_value_is_a_mistake_not_a_crash(text: str, line: int) -> None:
    _, found = parse_schedules(text)
    assert [(p.line, p.message) for p in found] == [
        (line, "not valid YAML: an alias (*name) is used inside the value it names")]


def test_aliases_that_multiply_the_file_are_refused_quickly() -> None:
    # Seven levels of ten: ten million values if built out ("billion laughs").
    levels = ["a: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 7)]
    _, found = parse_schedules("\n".join(levels) + "\n")
    assert len(found) == 1 and "expands to more than 100,000 values" in found[0].message


@pytest.mark.parametrize(("tz", "at", "cron", "fires_utc", "warning"), [
    # The clocks go forward: the time does not exist, so it fires once, at
    # the change, exactly when a cron line with that time does.
    ("Europe/London", "2027-03-28 01:30", "30 1 * * *", datetime(2027, 3, 28, 1, 0),
     "2027-03-28 01:30 does not exist in Europe/London (the clocks go forward then), so it "
     "fires at 02:00 BST, when they change"),
    ("America/New_York", "2027-03-14 02:30", "30 2 * * *", datetime(2027, 3, 14, 7, 0),
     "fires at 03:00 EDT, when they change"),
    # The clocks go back: it happens twice and fires the first time.
    ("Europe/London", "2027-10-31 01:30", "30 1 * * *", datetime(2027, 10, 31, 0, 30),
     "2027-10-31 01:30 happens twice in Europe/London (the clocks go back then); it fires the "
     "first time, 01:30 BST"),
])
def test_an_at_in_a_summer_time_change_fires_once_like_cron_and_says_when(
        tz: str, at: str, cron: str, fires_utc: datetime, warning: str) -> None:
    from dispatch.schedule.triggers import next_firing

    text = (f"timezone: {tz}\nschedules:\n  - id: once\n    kind: feeds\n    at: {at}\n"
            f"  - id: daily\n    kind: feeds\n    cron: \"{cron}\"\n")
    schedule_set, found = parse_schedules(text)
    assert [(p.line, p.severity.value) for p in found] == [(5, "warning")]
    assert warning in found[0].message
    start = fires_utc.replace(tzinfo=UTC) - timedelta(hours=6)
    once, daily = (next_firing(s, start) for s in schedule_set.schedules)
    assert once == daily == fires_utc.replace(tzinfo=UTC)
    assert next_firing(schedule_set.schedules[0], once) is None  # once only


def test_a_number_is_not_read_as_seconds_since_1970() -> None:
    # `at: 1900000000` was a send on 2030-03-17; `starts: 20271201` a window from 1970.
    _, found = parse_schedules("schedules:\n  - id: f\n    kind: digest\n    audience: [a]\n"
                               "    at: 1900000000\n    starts: 20271201\n")
    assert [(p.line, p.field, p.message) for p in found] == [
        (5, "schedules[0].at", '"1900000000" is a number, not a date and time'),
        (6, "schedules[0].starts", '"20271201" is a number, not a date and time')]


@pytest.mark.parametrize("subject", ['"Hello\\nworld"', '"Tab\\there"',
                                     "|\n              Hello\n              world"])
def test_a_subject_with_a_line_break_is_refused_like_a_title(subject: str) -> None:
    found = problems_of(f"""\
        schedules:
          - id: x
            kind: digest
            cron: '0 8 * * *'
            audience: [a]
            subject: {subject}
        """)
    assert [p.line for p in found] == [6], lines(found)
    assert found[0].is_error
    assert "contains a line break or control character" in found[0].message
    # Folded into one line, it is fine.
    assert problems_of("""\
        schedules:
          - id: x
            kind: digest
            cron: '0 8 * * *'
            audience: [a]
            subject: >-
              Hello
              world
        """) == []


def test_a_subject_that_renders_enormous_is_a_mistake_named_at_its_line(
        tmp_path: Path) -> None:
    root = _site(tmp_path)
    text = textwrap.dedent("""\
        schedules:
          - id: huge
            kind: digest
            cron: "0 8 * * mon"
            audience: [weekly]
            subject: '{{ "x" * 100000000 }}'
        """)
    kept, found = check_text(text, load_settings(root), NOW)
    assert kept.schedules == ()
    found = [p for p in found if "cannot be checked" not in str(p)]
    assert [(p.line, p.field) for p in found] == [(6, "schedules[0].subject")], lines(found)
    assert "longer than a subject can be (998 characters)" in found[0].message
