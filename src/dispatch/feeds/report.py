"""What a feed build did; light enough to import without feedgen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class FeedBuildReport:
    out_dir: Path
    written: tuple[Path, ...]
    """Files whose bytes changed (or were new), in the order written."""
    unchanged: int
    """Files left exactly as they were."""
    removed: tuple[Path, ...] = ()
    """Files of feeds that no longer exist (a category with no published article)."""
    feeds: int = 0
    """How many feeds were planned (each is three files)."""
    rendered: int = 0
    """How many of them had to be rendered (the others matched the manifest)."""

    @property
    def summary(self) -> str:
        return (f"{self.feeds} feed(s): {len(self.written)} file(s) written, "
                f"{self.unchanged} unchanged, {len(self.removed)} removed")
