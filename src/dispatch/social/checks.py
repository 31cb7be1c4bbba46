"""What ``dispatch check`` reports about social posts (never raises)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from dispatch.config import Settings
from dispatch.errors import InputError, Problem, Severity
from dispatch.models import Article
from dispatch.social.compose import compose
from dispatch.social.config import NETWORKS, social_problems, suggest


def override_line(settings: Settings, article: Article, network: str) -> int | None:
    """The line of ``network:`` under the article's ``social:`` frontmatter key.

    The loaded article keeps no positions, so the file is read again (only
    when there is something to report). Best effort: the ``social:`` line
    itself if the key cannot be told apart, None if the file is gone.
    """
    from dispatch.content.meta import FrontmatterError, split

    try:
        text = (settings.root / article.source).read_text(encoding="utf-8-sig")
        parts = split(text, article.source)
    except (OSError, UnicodeDecodeError, FrontmatterError):
        return None
    start = parts.key_lines.get("social")
    if start is None:
        return None
    key = re.compile(rf"(?:^|[\s{{,])[\"']?{re.escape(network)}[\"']?\s*:", re.IGNORECASE)
    lines = text.splitlines()
    for number in range(start, min(parts.body_line, len(lines) + 1)):
        line = lines[number - 1]
        if number > start and line[:1] not in (" ", "\t", ""):
            break  # the next top-level frontmatter key: past the social mapping
        probe = line.split(":", 1)[1] if number == start else line
        if key.search(probe):
            return number
    return start


def social_problems_for(settings: Settings, articles: Sequence[Article],
                        environ: Mapping[str, str] | None = None) -> list[Problem]:
    env = os.environ if environ is None else environ
    social, problems = social_problems(settings)
    names = {n.name for n in social.networks} | set(NETWORKS)
    for config in social.networks:
        if config.transport != "capture" and not env.get(config.secret_env):
            problems.append(Problem(
                "dispatch.toml", f"{config.secret_env} is not set; {config.name} posts will "
                "wait in the queue", settings.line_of(f"social.{config.name}.transport"),
                f"social.{config.name}", "the secret in the environment", Severity.WARNING))
    for article in articles:
        for network, _text in article.social:
            if network not in names:
                close = suggest(network, sorted(names))
                problems.append(Problem(
                    article.source, f"social override for unknown network {network!r} "
                    "is ignored", override_line(settings, article, network),
                    f"social.{network}",
                    f"did you mean {close!r}?" if close else "one of " + ", ".join(sorted(names)),
                    Severity.WARNING))
        for config in social.networks:
            try:
                compose(article, config)
            except InputError as exc:
                problems.extend(exc.problems)
    return problems
