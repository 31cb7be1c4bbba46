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

A file is read only when it changed: its size, modification time and
SHA-256 are stored after each import, so a pass whose file has the same size
and mtime does not open it, and a file merely touched (same hash) is not
imported again. A changed file is imported as a stream and only the
differences are written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dispatch.config import Settings
from dispatch.errors import InputError, Problem

if TYPE_CHECKING:
    from dispatch.stage import PassContext, StageReport


def synced_lists(settings: Settings) -> tuple[dict[str, Path], list[Problem]]:
    problems: list[Problem] = []
    found: dict[str, Path] = {}
    for name, options in settings.subscribers.list_options().items():
        key = f"subscribers.lists.{name}"
        value = options.file
        if value is None:
            continue  # a list readers join through the signup form only
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
    # The importer (SQLAlchemy) is imported by the stage only: `dispatch
    # check` reads synced_lists and must not load it for that.
    from dispatch.secret import secret_key
    from dispatch.stage import StageReport
    from dispatch.subscribers.csvfile import file_sha256, import_csv
    from dispatch.subscribers.erasure import erased_check
    from dispatch.subscribers.sources import record_source, source_state

    lists, problems = synced_lists(ctx.settings)
    done = []
    erased = erased_check(ctx.store, secret_key(ctx.settings)) if lists else None
    for name, path in lists.items():
        stat = path.stat()
        before = source_state(ctx.store, name)
        if before is not None and before.path == str(path) and before.size == stat.st_size:
            if before.mtime_ns == stat.st_mtime_ns:
                done.append(f"{name}: {path.name} unchanged")
                continue
            digest = file_sha256(path)
            if digest == before.sha256:
                record_source(ctx.store, name, str(path), stat.st_size, stat.st_mtime_ns,
                              digest, ctx.now)
                done.append(f"{name}: {path.name} unchanged (touched)")
                continue
        try:
            report = import_csv(ctx.store, path, name, ctx.now, erased=erased)
        except InputError as exc:
            problems.extend(exc.problems or [Problem(str(path), str(exc))])
            continue
        problems.extend(report.problems)
        record_source(ctx.store, name, str(path), stat.st_size, stat.st_mtime_ns,
                      report.sha256, ctx.now)
        done.append(f"{name}: {report.rows} from {path.name} ({report.created} new)")
    summary = "; ".join(done) if done else "no lists synced from CSV files"
    return StageReport("subscribers", summary, tuple(problems))
