"""The command line: the only place that prints or exits.

Each stage's commands live in their own module and register on the one
:data:`main` group; importing them here is what makes them appear.
"""

from dispatch.cli import core  # noqa: F401  (registers commands)
from dispatch.cli import social  # noqa: F401  (registers commands)
from dispatch.cli import feeds, web  # noqa: F401  (registers commands)
from dispatch.cli import queue, subscribers  # noqa: F401  (registers commands)
from dispatch.cli import schedule  # noqa: F401  (registers commands)
from dispatch.cli import email  # noqa: F401  (registers commands)
from dispatch.cli.base import main

__all__ = ["main"]
