"""A feed format, an email transport and a pass stage are each one
declaration plus one registry line: registering one (here by patching the
registry, as the one new line would) is enough for everything to use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from dispatch import pipeline
from dispatch.cli import main
from dispatch.config import load_settings
from dispatch.delivery import registry as email_registry
from dispatch.delivery.engine import make_transport
from dispatch.delivery.registry import EmailTransport
from dispatch.delivery.settings import load_delivery_settings
from dispatch.errors import ConfigError
from dispatch.feeds import build as feed_build
from dispatch.feeds import formats
from dispatch.feeds.formats import FeedFormat, feed_formats
from dispatch.feeds.model import Feed
from dispatch.pipeline import PassContext, StageReport
from dispatch.social.networks import NETWORKS, network, transports
from dispatch.store.engine import open_store
from feeds_site import write_site


def render_text(feed: Feed) -> bytes:
    return "".join(f"{e.title}\n{e.url}\n\n" for e in feed.entries).encode("utf-8")


TEXT = FeedFormat("text", "feed.txt", "text/plain", render_text)


@pytest.fixture
def text_format(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(formats.FEED_FORMATS, "text", f"{__name__}:TEXT")
    formats.feed_formats.cache_clear()
    feed_build._render_key.cache_clear()
    yield
    monkeypatch.undo()
    formats.feed_formats.cache_clear()
    feed_build._render_key.cache_clear()


def test_a_registered_feed_format_is_built_tracked_and_served(
        tmp_path: Path, text_format: None) -> None:
    root = write_site(tmp_path / "site")
    runner = CliRunner()
    first = runner.invoke(main, ["build", "--root", str(root)])
    assert first.exit_code == 0, first.output
    text = (root / "public" / "feed.txt").read_text(encoding="utf-8")
    assert "\n\n" in text and "https://" in text
    assert any((root / "public" / "category").glob("*/feed.txt"))
    again = runner.invoke(main, ["build", "--root", str(root)])
    assert "0 file(s) written" in again.output  # the manifest counts the new format too

    from dispatch.web.feeds import routes  # routes read the registry when the app is made

    settings = load_settings(root, environ={})
    store = open_store(f"sqlite:///{tmp_path / 'web.db'}")
    from starlette.applications import Starlette

    with TestClient(Starlette(routes=routes(settings, store))) as client:
        served = client.get("/feed.txt")
    store.dispose()
    assert served.status_code == 200
    assert served.headers["content-type"] == "text/plain; charset=utf-8"
    assert served.text == text


def test_changing_a_renderer_rebuilds_its_files(tmp_path: Path, text_format: None) -> None:
    # The render key covers every registered format's module, so output from
    # old renderer code is never left standing.
    assert __name__ in formats.renderer_modules()
    key = feed_build._render_key()
    formats.feed_formats.cache_clear()
    feed_build._render_key.cache_clear()
    assert feed_build._render_key() == key
    assert "dispatch.feeds.rss_atom" in formats.renderer_modules()


class Recorder:
    name = "recorder"

    def open(self) -> object:
        raise AssertionError("not opened in this test")


def build_recorder(settings: object, config: object) -> Recorder:
    return Recorder()


RECORDER = EmailTransport("recorder", "keeps messages in memory", build_recorder)  # type: ignore[arg-type]


def test_a_registered_email_transport_is_accepted_and_built(
        site_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text() + '\n[delivery]\ntransport = "recorder"\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError) as caught:  # unknown until registered
        load_settings(site_root, environ={})
    assert caught.value.problems[0].field == "delivery.transport"
    monkeypatch.setitem(email_registry.EMAIL_TRANSPORTS, "recorder", f"{__name__}:RECORDER")
    email_registry.email_transport.cache_clear()
    try:
        settings = load_settings(site_root, environ={})
        config = load_delivery_settings(settings, environ={})
        assert config.transport == "recorder"
        assert isinstance(make_transport(settings, config), Recorder)
    finally:
        email_registry.email_transport.cache_clear()


def test_a_misspelt_email_transport_is_refused_with_a_suggestion(site_root: Path) -> None:
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text() + '\n[delivery]\ntransport = "smpt"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(site_root, environ={})
    assert "did you mean 'smtp'?" in str(caught.value)


def count_stage(ctx: PassContext) -> StageReport:
    return StageReport("count", f"{len(ctx.published)} published")


def test_a_registered_stage_runs_in_every_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "STAGES", {**pipeline.STAGES,
                                             "count": f"{__name__}:count_stage"})
    names = [name for name, _ in pipeline.default_stages()]
    assert names[-1] == "count" and names[0] == "subscribers"


# --- every registered name: documented in the README, validated by `dispatch check` ---------

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _check(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", "--root", str(root)])
    return result.exit_code, result.output


def _errors_about(output: str, field: str) -> list[str]:
    """Error lines about ``field`` (a missing secret is only a warning)."""
    return [line for line in output.splitlines()
            if (f" {field}:" in line or f" {field}." in line) and " warning: " not in line]


@pytest.mark.parametrize("name", sorted(email_registry.EMAIL_TRANSPORTS))
def test_every_email_transport_is_documented_and_checked(site_root: Path, name: str) -> None:
    declared = email_registry.email_transport(name)
    assert f"| `{name}` | {declared.summary} |" in README
    server = '\nsmtp_url = "smtp://127.0.0.1:2525"' if declared.needs_server else ""
    toml = site_root / "dispatch.toml"
    base = toml.read_text(encoding="utf-8")
    toml.write_text(base + f'\n[delivery]\ntransport = "{name}"{server}\n', encoding="utf-8")
    _code, output = _check(site_root)
    assert _errors_about(output, "delivery.transport") == [], output
    wrong = name[:-1] + "x"
    toml.write_text(base + f'\n[delivery]\ntransport = "{wrong}"\n', encoding="utf-8")
    code, output = _check(site_root)
    assert code == 1 and _errors_about(output, "delivery.transport"), output


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_network_is_documented_and_its_table_checks_clean(site_root: Path,
                                                                 name: str) -> None:
    declared = network(name)
    assert f"| `{name}` | {declared.limit} |" in README
    transport = declared.transport or transports()["capture"]
    values = {"chat_id": '"@channel_name"', "handle": '"a.bsky.social"',
              "url": '"https://api.example.org"', "base_url": '"https://api.example.org"'}
    required = "".join(f"{key} = {values.get(key, chr(34) + 'x' + chr(34))}\n"
                       for key, info in transport.options.model_fields.items()
                       if info.is_required())
    toml = site_root / "dispatch.toml"
    toml.write_text(toml.read_text(encoding="utf-8") +
                    f'\n[social.{name}]\ntransport = "{transport.name}"\n{required}',
                    encoding="utf-8")
    _code, output = _check(site_root)
    assert _errors_about(output, f"social.{name}") == [], output


@pytest.mark.parametrize("name", sorted(transports()))
def test_every_social_transport_and_its_keys_are_documented(name: str) -> None:
    assert f'`transport = "{name}"`' in README
    for key in transports()[name].options.model_fields:
        assert f"`social.<name>.{key}`" in README


@pytest.mark.parametrize("fmt", feed_formats(), ids=lambda f: f.name)
def test_every_feed_format_is_documented(fmt: FeedFormat) -> None:
    # A format has no settings of its own: it is built for every feed folder.
    assert f"| `{fmt.name}` | `{fmt.file_name}` | `{fmt.media_type}` |" in README


def test_the_readme_walk_through_quotes_the_real_telegram_module() -> None:
    """"Adding a social network" shows Telegram's declaration and registry line as
    they are in the code, so the example cannot drift from what it describes."""
    import textwrap

    section = README[README.index("### Adding a social network"):]
    section = section[:section.index("\n### ", 5)]
    code = (Path(__file__).resolve().parent.parent / "src" / "dispatch" / "social" /
            "telegram.py").read_text(encoding="utf-8")
    block = section[section.index("```python\n") + 10:]
    block = textwrap.dedent(block[:block.index("```")])
    assert block.strip() in code
    line = '"telegram": "dispatch.social.telegram:TELEGRAM",'
    assert line in section and NETWORKS["telegram"] == "dispatch.social.telegram:TELEGRAM"
    for name in ("telegram_length", "TelegramOptions", "TelegramTransport(PostTransport)",
                 "def post(", "chat_id", "token_env", "silent"):
        assert name in code
