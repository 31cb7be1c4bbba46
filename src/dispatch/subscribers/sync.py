"""Lists kept in step with CSV files: ``[subscribers.lists]`` in dispatch.toml.

::

    [subscribers.lists]
    weekly = "subscribers.csv"        # list name = CSV file (relative to the site)

Every pass of ``dispatch run`` imports each file into its list, before any
edition is queued. The import is the same all-or-nothing import as
``dispatch subscribers import``: a file with a bad row is reported (file,
line, reason) and left out of this pass while the other files go on. It adds
and updates; it never removes anyone, and never re-activates an address that
unsubscribed, bounced or complained — so the example site's sample list works
out of the box and a CRM export can be dropped in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dispatch.config import Settings
from dispatch.errors import InputError, Problem
from dispatch.subscribers.csvfile import import_csv

if TYPE_CHECKING:
    from dispatch.stage import PassContext, StageReport


def synced_lists(settings: Settings) -> tuple[dict[str, Path], list[Problem]]:
    problems: list[Problem] = []
    found: dict[str, Path] = {}
    for name, value in settings.subscribers.lists.items():
        key = f"subscribers.lists.{name}"
        if not value:
            problems.append(settings.problem(key, f"{value!r} is not a file name",
                                             'a CSV path such as "subscribers.csv"'))
            continue
        path = settings.root / value
        if not path.is_file():
            problems.append(settings.problem(key, f"{value} does not exist",
                                             "a CSV file in the site folder"))
            continue
        found[str(name)] = path
    return found, problems


def subscribers_stage(ctx: PassContext) -> StageReport:
    from dispatch.stage import StageReport

    lists, problems = synced_lists(ctx.settings)
    done = []
    for name, path in lists.items():
        try:
            report = import_csv(ctx.store, path, name, ctx.now)
        except InputError as exc:
            problems.extend(exc.problems or [Problem(str(path), str(exc))])
            continue
        done.append(f"{name}: {report.rows} from {path.name} ({report.created} new)")
    summary = "; ".join(done) if done else "no lists synced from CSV files"
    return StageReport("subscribers", summary, tuple(problems))
