"""A small site on disk for the feed tests: real Markdown through the real loader."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests import sitekit

from dispatch.config import Settings, load_settings
from dispatch.content.loader import load_site
from dispatch.models import Article

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SITE_URL = "https://journal.example.org"
FEEDS_URL = "https://feeds.example.net/news"

CONFIG = f"""
[site]
title = "Clinic Journal"
url = "{SITE_URL}"
description = "Notes & news"
language = "en"
timezone = "Europe/London"
author = "Clinic Team"

[feeds]
url = "{FEEDS_URL}"
entries = 20
icon = "/favicon.png"
logo = "/logo.png"
hub = "https://hub.example.com/"
"""

ARTICLES = {
    # Summer: Europe/London is BST, +01:00.
    "ampersand.md": """---
title: "Salt & sugar: <why> it matters"
date: 2026-03-20T09:00:00
summary: "Less salt < more salt? A & B."
category: Heart health
tags: [salt, sugar]
author: Dr Amara Osei
image: /images/salt.jpg
image_alt: A salt shaker
---

Read [our guide](/guides/salt/) and see ![chart](/img/chart.png "Chart").[^1]

## Key takeaway

Eat less salt.

[^1]: A source, <https://example.com/study>.
""",
    # After the spring-forward change: +01:00 from 2026-03-29.
    "cafe.md": """---
title: "Café culture and caffeine: naïve questions answered"
date: 2026-04-02T08:30:00
updated: 2026-04-10T10:00:00
summary: "Über-strong coffee, déjà vu, and sleep."
category: Nutrition
tags: [coffee]
---

Coffee in the [morning](#when) is fine.
""",
    # An explicit offset in another zone, after the autumn change.
    "emoji.md": """---
title: "Cold season 🤧 is here"
date: 2026-11-02T07:00:00-05:00
summary: "Wash your hands 🧼."
category: Infections
---

Soap works. See <a href="/soap/">soap</a>.
""",
    "draft.md": """---
title: "Not yet"
date: 2026-01-01T09:00:00
status: draft
category: Nutrition
---

Draft body.
""",
    "future.md": """---
title: "Tomorrow's news"
date: 2027-06-01T09:00:00
category: Nutrition
---

Future body.
""",
}


def write_site(root: Path, articles: dict[str, str] | None = None, config: str = CONFIG) -> Path:
    """The feeds site, through the one site factory (tests/sitekit.py)."""
    return sitekit.write_site(root, base=config,
                              files=ARTICLES if articles is None else articles)


def load(root: Path) -> tuple[Settings, tuple[Article, ...]]:
    settings = load_settings(root, environ={})
    result = load_site(settings)
    assert not result.errors, result.errors
    return settings, result.articles
