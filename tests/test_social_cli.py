"""``dispatch social SLUG [--json]`` and the social checks, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import twitter_text

from dispatch.config import load_settings
from dispatch.social.checks import social_problems_for
from dispatch.social.count import bluesky_length, mastodon_length

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


def test_text_output_and_queue_state_after_a_run(example_site: Path) -> None:
    run = dispatch("run", "--once", "--root", str(example_site))
    assert "social: queued" in run.stdout, run.stdout + run.stderr
    # X has no social schedule in schedules.yaml, so the pass queued and
    # captured it at once; Mastodon waits for its schedule (30 minutes).
    result = dispatch("social", SLUG, "--network", "x", "--network", "mastodon",
                      "--root", str(example_site))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("── x (x): ")
    assert "/280, from takeaway, shortened, sent" in result.stdout
    assert "── mastodon (mastodon): " in result.stdout and "not queued" in result.stdout
    assert (example_site / ".dispatch" / "social" / "x" / f"{SLUG}.json").exists()


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
    problems = [str(p) for p in social_problems_for(load_settings(site_root), [], environ={})]
    lines = toml.read_text().splitlines()
    pigeon = lines.index('transport = "carrier-pigeon"') + 1
    assert (f"dispatch.toml:{pigeon}: social.mastodon.transport: unknown transport "
            "'carrier-pigeon' (expected one of capture, mastodon, bluesky, webhook)") in problems
    assert any("social.bluesky.handle: missing" in p for p in problems)
    assert any("the mastodon transport cannot post a threads post" in p for p in problems)
    result = dispatch("check", "--root", str(site_root))
    assert result.returncode == 1 and "carrier-pigeon" in result.stderr
