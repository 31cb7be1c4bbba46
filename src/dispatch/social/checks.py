"""What ``dispatch check`` reports about social posts (never raises)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from dispatch.config import Settings
from dispatch.errors import InputError, Problem, Severity
from dispatch.models import Article
from dispatch.social.compose import compose
from dispatch.social.config import NETWORKS, social_problems


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
                problems.append(Problem(
                    article.source, f"social override for unknown network {network!r}",
                    None, f"social.{network}", "one of " + ", ".join(sorted(names)),
                    Severity.WARNING))
        for config in social.networks:
            try:
                compose(article, config)
            except InputError as exc:
                problems.extend(exc.problems)
    return problems
