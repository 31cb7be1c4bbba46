"""Everything ``dispatch check`` validates, gathered in one place.

Each later stage adds its own checks here (templates, feeds, schedules, …);
a check returns problems and never raises for a user mistake.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from dispatch.config import Settings
from dispatch.content.loader import LoadResult
from dispatch.errors import Problem

if TYPE_CHECKING:
    from dispatch.render.checks import EMAIL_CHECKED as EMAIL_CHECKED
    from dispatch.render.checks import article_errors as article_errors


def __getattr__(name: str) -> Any:
    # PEP 562: the email renderer (premailer, lxml, Jinja) is imported only
    # by what uses these, never by `dispatch articles` or `--help`.
    if name in ("EMAIL_CHECKED", "article_errors"):
        from dispatch.render import checks

        return getattr(checks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def all_problems(settings: Settings, now: datetime,
                 loaded: LoadResult | None = None) -> list[Problem]:
    """``now`` decides which articles are published and which `at` times are past."""
    if loaded is None:
        from dispatch.pipeline import load_for_check

        loaded = load_for_check(settings)
    result = loaded
    problems = list(result.problems)
    problems.extend(social_check(settings, result))
    problems.extend(delivery_check(settings))
    problems.extend(database_check(settings))
    problems.extend(secret_key_check(settings))
    problems.extend(schedule_check(settings, now))
    problems.extend(feeds_check(settings, result))
    problems.extend(email_check(settings, result, now))
    problems.extend(dkim_check(settings))
    problems.extend(bounces_check(settings))
    return problems


def bounces_check(settings: Settings) -> list[Problem]:
    """The bounce mailbox URL, and reports that would not be matched or read."""
    import os

    from dispatch.bounces.checks import bounce_problems

    return bounce_problems(settings, os.environ)


def dkim_check(settings: Settings) -> list[Problem]:
    """``[dkim]``: the key is there and parses, and the domain aligns with From."""
    import os

    from dispatch.dkim.status import dkim_status

    return dkim_status(settings, os.environ)[1]


def social_check(settings: Settings, result: LoadResult) -> list[Problem]:
    """``[social]`` settings, and every published article's posts must compose."""
    from dispatch.social.checks import social_problems_for

    return social_problems_for(settings, result.articles)


def database_check(settings: Settings) -> list[Problem]:
    """A database URL given in the environment or the file that no command
    could open (every other command stops on it; check must say so too)."""
    import os

    from dispatch.config import DATABASE_ENV
    from dispatch.store.engine import DATABASE_URL_EXPECTED, url_problem

    given = os.environ.get(DATABASE_ENV) or settings.section("database").get("url")
    why = url_problem(given) if isinstance(given, str) and given else None
    if why is None:
        return []
    if os.environ.get(DATABASE_ENV):
        return [Problem(f"environment variable {DATABASE_ENV}", why, None, None,
                        DATABASE_URL_EXPECTED)]
    return [settings.problem("database.url", why, DATABASE_URL_EXPECTED)]


def secret_key_check(settings: Settings) -> list[Problem]:
    from dispatch.unsubscribe import secret_key_problems

    return secret_key_problems(settings)


def delivery_check(settings: Settings) -> list[Problem]:
    """``[delivery]`` settings and the SMTP URL (a password in the file is a warning)."""
    from dispatch.delivery.settings import config_problems
    from dispatch.subscribers.sync import synced_lists

    return config_problems(settings) + synced_lists(settings)[1]


def schedule_check(settings: Settings, now: datetime) -> list[Problem]:
    """``schedules.yaml``: every mistake with its line, audiences against the lists."""
    from dispatch.schedule.sitefile import read_schedules, validation_store

    store = validation_store(settings)
    try:
        # Only to warn about an `at` already past; nothing is decided here.
        _schedules, problems = read_schedules(settings, now, store)
    finally:
        if store is not None:
            store.dispose()
    return problems


def email_check(settings: Settings, result: LoadResult, now: datetime) -> list[Problem]:
    """Email templates (syntax, undefined variables, image alt) and Gmail's clip size.

    Kept in the state folder under everything the renderer reads, so a check
    of a site whose templates and articles have not changed imports no
    renderer (see dispatch.render.checkcache)."""
    from dispatch.render.checkcache import CHECK_FILE, KeptChecks, check_key, email_samples

    samples = email_samples(result.articles, now)
    kept = KeptChecks(settings, CHECK_FILE)

    def render() -> tuple[list[Problem], list[str]]:
        from dispatch.render.checks import email_problems

        return email_problems(settings, samples)

    problems = kept.problems(check_key(settings, samples, now), render)
    kept.save()
    return problems


def feeds_check(settings: Settings, result: LoadResult) -> list[Problem]:
    """``[feeds]`` settings, XML-illegal characters a feed would drop, category clashes."""
    from dispatch.feeds.checks import feed_problems

    return feed_problems(settings, result.articles)
