"""The command line: the only place that prints or exits.

Each stage's commands live in their own module; :data:`LAZY_COMMANDS` in
``base.py`` names them, and the group imports a module only when one of its
commands runs.
"""

from dispatch.cli.base import main

__all__ = ["main"]
