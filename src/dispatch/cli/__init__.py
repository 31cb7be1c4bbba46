"""The command line: the only place that prints or exits.

Each stage's commands live in their own module and register on the one
:data:`main` group; importing them here is what makes them appear.
"""

from dispatch.cli import core  # noqa: F401  (registers commands)
from dispatch.cli.base import main

__all__ = ["main"]
