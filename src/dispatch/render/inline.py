"""CSS inlining with premailer, configured on purpose.

* ``inline.css`` is the only CSS premailer sees; ``head.css`` (resets,
  @media, dark mode, client hacks, all ``!important``) is put into ``<head>``
  *after* inlining, so premailer can neither drop its hack selectors nor
  strip its ``!important``.
* ``strip_important=False`` anyway, in case a site's inline.css holds some.
* ``allow_network=False``: rendering never fetches anything.
* premailer keeps one process-wide parse cache of 128 entries by default,
  which thrashes with two templates; the size is read from the environment
  when premailer is first imported, hence the setdefault before the import.
* premailer imports ``requests`` (with urllib3, chardet and charset
  normalizers) only to fetch external stylesheets, which it never does here
  (``allow_network=False``). It is handed a stand-in that imports the real
  one if it is ever used, so that ``dispatch check``, which renders every
  article, does not pay for it.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import types
from typing import Any

from dispatch.errors import Problem, TemplateError

os.environ.setdefault("PREMAILER_CACHE_MAXSIZE", "4096")


class _OnFirstUse(types.ModuleType):
    """A module that imports the real one of its name on first attribute use."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)


def _import_premailer() -> types.ModuleType:
    stand_in = None
    if "requests" not in sys.modules:
        stand_in = sys.modules["requests"] = _OnFirstUse("requests")
    try:
        return importlib.import_module("premailer")
    finally:
        if stand_in is not None and sys.modules.get("requests") is stand_in:
            del sys.modules["requests"]  # everyone else imports the real one


premailer = _import_premailer()

HEAD_STYLE_MARKER = "</head>"


def inline_css(html: str, inline_css_text: str, head_css_text: str) -> str:
    """Inline ``inline_css_text`` into ``html`` and add ``head_css_text`` in <head>."""
    try:
        inlined = premailer.Premailer(
            html,
            css_text=inline_css_text,
            strip_important=False,
            allow_network=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
            keep_style_tags=False,
            remove_classes=False,
            exclude_pseudoclasses=True,
            # premailer turns CSS widths into attributes ("100%", even
            # height="auto"), overwriting the pixel widths Outlook needs.
            disable_basic_attributes=["width", "height"],
        ).transform(pretty_print=False)
    except Exception as exc:  # premailer raises bare parser/cssutils errors
        raise TemplateError([Problem("inline.css", f"CSS inlining failed: {exc}", None,
                                     "css", "plain CSS rules without nested @media")]) from exc
    text = str(inlined)
    # Comments are for template authors, not for the 102 KB budget.
    head_css_text = re.sub(r"/\*.*?\*/", "", head_css_text, flags=re.DOTALL)
    if head_css_text.strip():
        style = f'<style type="text/css">\n{head_css_text.strip()}\n</style>\n'
        at = text.find(HEAD_STYLE_MARKER)
        text = text[:at] + style + text[at:] if at >= 0 else style + text
    return text
