"""Small sites and recipients for the email tests (imported, not a conftest)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

from tests.sitekit import SITE_TOML, write_site

from dispatch.config import Settings, load_settings
from dispatch.content.loader import load_site
from dispatch.models import Article
from dispatch.render import Recipient

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "email"
NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
SEND_DATE = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)

EMAIL_TOML = """
[email]
disclaimer = "General information, not medical advice."
"""
TOML = SITE_TOML + EMAIL_TOML

ARTICLE = """\
---
title: "Salt & the heart: what to know"
date: 2026-10-01T08:00:00
summary: "Most of the salt we eat is already in food."
category: Heart health
image: /images/salt.jpg
image_alt: A salt shaker
---

Most salt comes from bread and ready meals.[^1] See [our guide](/guides/salt) and
[the NHS page](https://www.nhs.uk/salt).

## What helps

- Read labels.
- Cook from scratch when you can, and taste before adding salt at the table
  because habits are hard to change.

1. First numbered
2. Second numbered

![A chart of salt sources](/img/chart.png)

## Key takeaway

Cutting salt lowers blood pressure within weeks.

## Sources

[^1]: Survey of salt intake, 2024.
"""

SECOND = """\
---
title: "Walking after meals"
date: 2026-10-03T08:00:00
summary: "A short walk helps."
category: Metabolic health
---

A ten-minute walk after meals steadies blood sugar.

## Key takeaway

Walk for ten minutes after eating.
"""


# Everything that used to push a phone screen sideways (scrollWidth > 375).
WIDE = """\
---
title: "Wide things: URLs, code and tables"
date: 2026-10-04T08:00:00
summary: "Long URLs, an unbroken word, a code block and a seven-column table."
category: Methods
---

A trial is described on https://www.example.org/very/long/path/segments/that/go/on/and/on/without/any/break/at/all/index.html?with=query&and=more
and in the abstract.[^1] An unbroken word:
Supercalifragilisticexpialidocioussupercalifragilisticexpialidocious.
Inline code such as `a_very_long_identifier_name_that_keeps_going_and_going_forever_more` too.

### Code

```
result = compute_something_with_a_very_long_function_name(argument_one, argument_two, arg3)
```

### A wide table

| Medicine | Dose | Route | Timing | Common side effects | Source | Year |
|----------|------|-------|--------|---------------------|--------|------|
| Amlodipine | 5 mg | oral | morning | Swelling of the ankles | Trial A | 2021 |
| Indapamide | 2.5 mg | oral | morning | Low potassium | Trial B | 2019 |

## Key takeaway

Long things must wrap on a phone.

[^1]: Smith J. https://www.ncbi.nlm.nih.gov/pmc/articles/PMC8976745/
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) if text.startswith("\n") else text, encoding="utf-8")
    return path


def make_site(root: Path, articles: dict[str, str] | None = None) -> Settings:
    """The email site, through the one site factory (tests/sitekit.py)."""
    texts = articles or {"salt.md": ARTICLE, "walking.md": SECOND}
    return load_settings(write_site(root, toml=EMAIL_TOML, files={
        name: textwrap.dedent(text) if text.startswith("\n") else text
        for name, text in texts.items()}))


def articles_of(settings: Settings) -> list[Article]:
    return list(load_site(settings).articles)


def recipient(name: str | None = "Ann Reader", email: str = "ann@example.org",
              token: str = "tok123") -> Recipient:
    return Recipient(email=email, name=name,
                     unsubscribe_url=f"https://journal.test/u/{token}?l=weekly&x=1",
                     webview_url=f"https://journal.test/e/{token}",
                     unsubscribe_mailto=f"mailto:unsubscribe+{token}@journal.test")
