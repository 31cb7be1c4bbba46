"""Everything ``dispatch check`` validates, gathered in one place.

Each later stage adds its own checks here (templates, feeds, schedules, …);
a check returns problems and never raises for a user mistake.
"""

from __future__ import annotations

from dispatch.config import Settings
from dispatch.content.loader import LoadResult, load_site
from dispatch.errors import Problem


def all_problems(settings: Settings, loaded: LoadResult | None = None) -> list[Problem]:
    result = loaded if loaded is not None else load_site(settings)
    problems = list(result.problems)
    return problems
