"""``dispatch social SLUG [--json]`` and the social checks, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import twitter_text

from dispatch.config import load_settings
from dispatch.content.loader import load_site
from dispatch.errors import ConfigError
from dispatch.social.checks import social_problems_for
from dispatch.social.count import bluesky_length, mastodon_length
from sitekit import write_article

ENV = {**os.environ, "COLUMNS": "200"}
ENV.pop("DISPATCH_DATABASE_URL", None)
SLUG = "sleep-and-blood-pressure"


def dispatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatch", *args], capture_output=True,
                          text=True, env=ENV, timeout=120)


def test_json_lists_every_configured_network_measured_by_its_rule(example_site: Path) -> None:
    result = dispatch("social", SLUG, "--json", "--root", str(example_site))
    assert result.returncode == 0, result.stderr
    posts = {p["network"]: p for p in json.loads(result.stdout)}
    assert set(posts) == {"mastodon", "bluesky", "x"}
    for post in posts.values():
        assert post["length"] <= post["limit"]
        assert post["url"] in post["text"] and f"utm_source={post['network']}" in post["url"]
        assert post["source"] == "takeaway" and post["queue"] is None
    assert mastodon_length(posts["mastodon"]["text"]) == posts["mastodon"]["length"]
    assert bluesky_length(posts["bluesky"]["text"]) == posts["bluesky"]["length"] <= 300
    assert twitter_text.parse_tweet(posts["x"]["text"]).weightedLength <= 280
    facet = posts["bluesky"]["facets"][0]
    raw = posts["bluesky"]["text"].encode()
    assert raw[facet["index"]["byteStart"]:facet["index"]["byteEnd"]].decode() == \
        posts["bluesky"]["url"]
    assert posts["mastodon"]["text"].startswith("Sleeping under six hours most nights")


def test_first_run_announces_nothing_and_queue_by_hand_posts_once(example_site: Path) -> None:
    run = dispatch("run", "--once", "--root", str(example_site))
    # A fresh install: the four published articles are the back catalogue.
    # X (queued by this stage, not by a schedule) says so and posts nothing.
    assert "social: queued 0 (x: first pass, 4 already published (recorded, not " \
        "announced)" in run.stdout, run.stdout + run.stderr
    assert not (example_site / ".dispatch" / "social").exists()

    queued = dispatch("social", SLUG, "--queue", "--network", "x", "--root", str(example_site))
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout == "x: queued\n"
    again = dispatch("social", SLUG, "--queue", "--network", "x", "--root", str(example_site))
    assert again.stdout == "x: already queued\n"
    run = dispatch("run", "--once", "--root", str(example_site))
    assert "social: queued 0, sent 1," in run.stdout, run.stdout
    captured = list((example_site / ".dispatch" / "social").rglob("*.json"))
    assert [c.relative_to(example_site / ".dispatch" / "social").as_posix()
            for c in captured] == [f"x/{SLUG}.json"]
    third = dispatch("social", SLUG, "--queue", "--network", "x", "--root", str(example_site))
    assert third.stdout == "x: already sent\n"

    result = dispatch("social", SLUG, "--network", "x", "--network", "mastodon",
                      "--root", str(example_site))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("── x (x): ")
    assert "/280, from takeaway, shortened, sent" in result.stdout
    assert "── mastodon (mastodon): " in result.stdout and "not queued" in result.stdout


def test_after_an_edit_the_stored_text_is_shown_and_the_difference_said(
        example_site: Path) -> None:
    assert dispatch("social", SLUG, "--queue", "--network", "x",
                    "--root", str(example_site)).returncode == 0
    before = json.loads(dispatch("social", SLUG, "--json", "--network", "x",
                                 "--root", str(example_site)).stdout)[0]
    article = next(p for p in (example_site / "content").rglob("*.md")
                   if "Sleeping under six hours" in p.read_text(encoding="utf-8"))
    article.write_text(article.read_text(encoding="utf-8").replace(
        "Sleeping under six hours", "Sleeping less than six hours"), encoding="utf-8")

    shown = dispatch("social", SLUG, "--network", "x", "--root", str(example_site))
    assert shown.returncode == 0, shown.stderr
    assert ", queued\nSleeping under six hours" in shown.stdout  # the stored text
    assert "Sleeping less than" not in shown.stdout
    assert "the article now gives a different x post; the text above is the stored one" \
        in shown.stdout
    (data,) = json.loads(dispatch("social", SLUG, "--json", "--network", "x",
                                  "--root", str(example_site)).stdout)
    assert data["text"] == before["text"] and data["queue"]["status"] == "queued"
    assert data["current_differs"] is True
    assert data["current"]["text"].startswith("Sleeping less than six hours")
    assert before["current_differs"] is False


def test_unknown_slug_and_unknown_network_are_clean_errors(example_site: Path) -> None:
    result = dispatch("social", "no-such-article", "--root", str(example_site))
    assert result.returncode == 1 and "no article with slug 'no-such-article'" in result.stderr
    assert "Traceback" not in result.stderr
    result = dispatch("social", SLUG, "--network", "myspace", "--root", str(example_site))
    assert result.returncode == 1
    assert "social.myspace: network 'myspace' is not configured" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_reports_bad_social_settings_with_lines(site_root: Path) -> None:
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text() + """
[social.mastodon]
transport = "carrier-pigeon"

[social.bluesky]
transport = "bluesky"

[social.threads]
transport = "mastodon"
""", encoding="utf-8")
    # Every command refuses the file, with every problem at once.
    with pytest.raises(ConfigError) as caught:
        load_settings(site_root)
    problems = [str(p) for p in caught.value.problems]
    lines = toml.read_text().splitlines()
    pigeon = lines.index('transport = "carrier-pigeon"') + 1
    assert (f"dispatch.toml:{pigeon}: social.mastodon.transport: 'carrier-pigeon' is not "
            "allowed (expected one of capture, webhook, mastodon, bluesky, telegram)") in problems
    bluesky = lines.index("[social.bluesky]") + 1  # no handle line: its table's
    assert f"dispatch.toml:{bluesky}: social.bluesky.handle: missing " \
        "(expected a value for this key)" in problems
    assert any("the mastodon transport cannot post a threads post" in p for p in problems)
    result = dispatch("check", "--root", str(site_root))
    assert result.returncode == 1 and "carrier-pigeon" in result.stderr


def test_typos_and_keys_of_another_transport_are_rejected_with_lines(site_root: Path) -> None:
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text() + """
[social]
hashtag = 2

[social.mastodon]
limt = 300

[social.bsky2]
network = "bluesky"
transport = "bluesky"
token_env = "MY_TOKEN"

[social.x]
url = "https://hooks.example/x"

[social.mastdon]
""", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(site_root)
    problems = [str(p) for p in caught.value.problems]
    lines = toml.read_text().splitlines()

    def at(text: str) -> int:
        return lines.index(text) + 1

    assert (f"dispatch.toml:{at('hashtag = 2')}: social.hashtag: unknown key 'hashtag' "
            "(did you mean 'hashtags'?)") in problems
    assert (f"dispatch.toml:{at('limt = 300')}: social.mastodon.limt: unknown key 'limt' "
            "(did you mean 'limit'?)") in problems
    token, url = at('token_env = "MY_TOKEN"'), at('url = "https://hooks.example/x"')
    assert (f"dispatch.toml:{token}: social.bsky2.token_env: "
            "'token_env' is not used by the bluesky transport (only by mastodon and telegram) "
            "(did you mean 'password_env'?)") in problems
    assert f"dispatch.toml:{at('[social.bsky2]')}: social.bsky2.handle: missing" in \
        " ".join(problems)
    assert (f"dispatch.toml:{url}: social.x.url: 'url' is "
            "not used by the capture transport (only by webhook and mastodon and bluesky and "
            "telegram)"
            ) in " ".join(problems)
    assert (f"dispatch.toml:{at('[social.mastdon]')}: social.mastdon: unknown network "
            "'mastdon' (the table name, as it sets no network) (did you mean "
            "'mastodon'?)") in problems
    result = dispatch("check", "--root", str(site_root))
    assert result.returncode == 1 and "limt" in result.stderr and "Traceback" not in result.stderr


def test_frontmatter_override_for_an_unknown_network_names_its_line(site_root: Path) -> None:
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text() + '\n[social.mastodon]\n', encoding="utf-8")
    path = write_article(site_root, "a.md", """\
        title: A
        date: 2026-01-05
        social:
          mastodon: "Fine."
          mastdon: "Typo."
        tags: [x]
    """, "## Key takeaway\n\nShort.\n")
    settings = load_settings(site_root)
    problems = social_problems_for(settings, load_site(settings).articles, environ={})
    line = path.read_text(encoding="utf-8").splitlines().index('  mastdon: "Typo."') + 1
    assert [str(p) for p in problems] == [
        f"content/a.md:{line}: social.mastdon: warning: social override for unknown network "
        "'mastdon' is ignored (did you mean 'mastodon'?)"]


def test_a_network_name_yaml_reads_as_a_number_is_an_unknown_network(site_root: Path) -> None:
    write_article(site_root, "a.md", """\
        title: A
        date: 2026-01-05
        social:
          123: "Hi."
    """, "## Key takeaway\n\nShort.\n")
    settings = load_settings(site_root)
    result = load_site(settings)
    assert [p for p in result.problems if p.is_error] == []
    problems = social_problems_for(settings, result.articles, environ={})
    assert [str(p) for p in problems] == [
        "content/a.md:5: social.123: warning: social override for unknown network '123' is "
        "ignored (expected one of bluesky, linkedin, mastodon, telegram, threads, x)"]
