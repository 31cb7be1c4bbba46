"""The command line: the only place that prints or exits.

Each stage's commands live in their own module and register on the one
:data:`main` group; importing them here is what makes them appear.
"""

from dispatch.cli import (  # noqa: F401  (importing registers the commands)
    core,
    email,
    feeds,
    queue,
    schedule,
    social,
    subscribers,
    web,
)
from dispatch.cli.base import main

__all__ = ["main"]
