"""What a pass hands each stage, and what a stage answers.

Stage modules (subscriber sync, feeds, social, delivery) import this module,
never :mod:`dispatch.pipeline`, which lists and runs them: the pass context
is below the stages, the pipeline above them. Whatever a stage needs from
a higher part of dispatch (which social networks a schedule covers, say)
reaches it through the context, filled in by whoever runs the pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from dispatch.config import Settings
from dispatch.content.loader import LoadResult
from dispatch.errors import Problem
from dispatch.models import Article
from dispatch.store.articles import Publication
from dispatch.store.engine import Store


@dataclass(frozen=True, slots=True)
class SocialSchedules:
    """Which social networks the site's schedules queue posts for."""

    networks: frozenset[str] | None = frozenset()
    """Covered networks; None: every network (or the file is unusable, so
    nothing is posted at once)."""
    problems: tuple[Problem, ...] = ()


def no_social_schedules() -> SocialSchedules:
    """For a pass run without a scheduler's view of schedules.yaml."""
    return SocialSchedules()


@dataclass(frozen=True)
class PassContext:
    settings: Settings
    store: Store
    now: datetime
    load: LoadResult
    publication: Publication
    social_schedules: Callable[[], SocialSchedules] = field(default=no_social_schedules)
    """Asked only when needed (a new article, ``on_publish = "auto"``)."""

    @property
    def published(self) -> tuple[Article, ...]:
        return tuple(a for a in self.load.articles if a.is_published(self.now))


@dataclass(frozen=True, slots=True)
class StageReport:
    stage: str
    summary: str
    problems: tuple[Problem, ...] = ()
    failed: bool = False


Stage = Callable[[PassContext], StageReport]
