"""Recipient values as templates see them: printable, and nothing else.

An edition is rendered once with placeholder tokens and personalised later by
byte substitution, so a template may only *print* ``recipient.name`` (and the
other recipient values). ``{{ recipient.name|title }}``, ``.split()[0]``,
``|truncate`` or ``~ "x"`` would transform the placeholder token, not the name,
and send the token to everyone. A :class:`Slot` therefore refuses every
operation with :class:`SlotMisuse`; only the environment's ``finalize`` hook,
which Jinja calls for a plain ``{{ … }}``, turns it into text. The naive
per-recipient path uses the same slots holding real values, so both paths
accept and refuse the same templates.

``finalize`` also records where each value was printed (template file and
line), so later checks can point at the template line responsible.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

# Plain ASCII letters and digits: nothing in Jinja, premailer or lxml escapes
# or re-encodes them, in text or in attributes.
PLACEHOLDERS: dict[str, str] = {
    "name": "DISPATCHxRCPTxNAMEx7Q",
    "email": "DISPATCHxRCPTxEMAILx7Q",
    "unsubscribe_url": "DISPATCHxRCPTxUNSUBx7Q",
    "webview_url": "DISPATCHxRCPTxWEBVIEWx7Q",
    "preferences_url": "DISPATCHxRCPTxPREFSx7Q",
    "first_name": "DISPATCHxRCPTxFIRSTx7Q",
}
TOKEN = re.compile("|".join(re.escape(t) for t in PLACEHOLDERS.values()))
# What is left of a token that something changed (case, cut, joined):
# never legitimate output.
FRAGMENT = re.compile(r"dispatchxr|rcptx(?:name|email|unsub|webview|prefs|first)",
                      re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Use:
    """One place a template printed a recipient value."""

    key: str
    filename: str | None
    line: int | None


class SlotMisuse(TypeError):
    """A template did more with a recipient value than print it."""

    def __init__(self, key: str, what: str) -> None:
        self.key = key
        super().__init__(
            f"recipient.{key} can only be printed as it is ({{{{ recipient.{key} }}}}), not "
            f"{what}: it is filled in per recipient after the edition is rendered once, so "
            "filters, methods, tests and expressions on it cannot work")


class Slot:
    """A recipient value that can be printed and nothing else."""

    # Names a template would not guess: `recipient.name.text` must be refused
    # like any other attribute, not print the placeholder.
    __slots__ = ("_slot_key", "_slot_text", "_slot_uses")

    def __init__(self, key: str, text: str, uses: list[Use]) -> None:
        object.__setattr__(self, "_slot_key", key)
        object.__setattr__(self, "_slot_text", text)
        object.__setattr__(self, "_slot_uses", uses)

    def _refuse(self, what: str) -> NoReturn:
        raise SlotMisuse(object.__getattribute__(self, "_slot_key"), what)

    def __getattribute__(self, name: str) -> Any:
        # Protocol probes (copy, hasattr, isinstance) and our own refusal stay
        # normal; everything else, our slots included, is refused (the module
        # reads those with object.__getattribute__).
        if name == "_refuse" or (name.startswith("__") and name.endswith("__")):
            return object.__getattribute__(self, name)
        object.__getattribute__(self, "_refuse")(f"with .{name}")

    def __setattr__(self, name: str, value: object) -> None:
        self._refuse("assigned to")

    def __str__(self) -> str:
        self._refuse("through a filter or inside an expression")

    def __html__(self) -> str:
        self._refuse("through a filter such as |e or |safe")

    def __format__(self, spec: str) -> str:
        self._refuse("formatted")

    def __len__(self) -> int:
        self._refuse("measured (|length, |truncate)")

    def __iter__(self) -> Any:
        self._refuse("iterated (|first, |list, |join)")

    def __getitem__(self, item: object) -> Any:
        self._refuse("indexed or sliced")

    def __contains__(self, item: object) -> bool:
        self._refuse("searched with 'in'")

    def __eq__(self, other: object) -> bool:
        self._refuse("compared")

    def __ne__(self, other: object) -> bool:
        self._refuse("compared")

    def __lt__(self, other: object) -> bool:
        self._refuse("compared")

    __le__ = __gt__ = __ge__ = __lt__

    def __add__(self, other: object) -> Any:
        self._refuse("joined with + or ~")

    __radd__ = __mul__ = __rmul__ = __mod__ = __rmod__ = __add__

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        # Never empty: a missing name becomes [email] name_fallback.
        return True

    def __repr__(self) -> str:
        # |pprint, {{ recipient }} and printing a list of them all go through here.
        self._refuse("printed through repr (|pprint, or the whole recipient)")


def slots(values: dict[str, str] | Any, uses: list[Use]) -> dict[str, Slot]:
    return {key: Slot(key, value, uses) for key, value in values.items()}


def _caller_location() -> tuple[str | None, int | None]:
    # Jinja calls finalize straight from the compiled template's code; its
    # module globals hold the template, which maps Python lines to template lines.
    frame = sys._getframe(2)
    template = frame.f_globals.get("__jinja_template__")
    if template is None:
        return None, None
    return template.filename, template.get_corresponding_lineno(frame.f_lineno)


def finalize(value: Any) -> Any:
    """The Environment's finalize hook: a printed Slot becomes its text."""
    if type(value) is Slot:
        text: str = object.__getattribute__(value, "_slot_text")
        uses: list[Use] = object.__getattribute__(value, "_slot_uses")
        filename, line = _caller_location()
        uses.append(Use(object.__getattribute__(value, "_slot_key"), filename, line))
        return text
    return value
