"""``dispatch build``: write the feeds."""

from __future__ import annotations

from pathlib import Path

import click

from dispatch.cli.base import Site, console, now, print_problems, site_command
from dispatch.feeds import build_feeds, load_feed_settings
from dispatch.pipeline import load


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: [feeds] out in dispatch.toml, else public/).")
@site_command
def build(site: Site, out_dir: Path | None) -> None:
    """Write RSS, Atom and JSON feeds, site-wide and per category.

    Only files whose bytes change are rewritten, each atomically.
    """
    settings = site.settings
    out = out_dir if out_dir is not None else load_feed_settings(settings).out_dir
    result = load(settings, site.store)
    print_problems(result.problems)
    report = build_feeds(settings, result.articles, now(), out)
    for path in report.written:
        console.print(f"wrote {_shown(path, settings.root)}", markup=False)
    for path in report.removed:
        console.print(f"removed {_shown(path, settings.root)}", markup=False)
    console.print(f"{report.summary} in {_shown(out, settings.root)}", markup=False)
    raise SystemExit(1 if result.errors else 0)


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)
