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
"""

from __future__ import annotations

import logging
import os
import re

os.environ.setdefault("PREMAILER_CACHE_MAXSIZE", "4096")

import premailer

from dispatch.errors import Problem, TemplateError

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
