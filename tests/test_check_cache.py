"""`dispatch check` keeps what it found about the site's emails (see
dispatch.render.checkcache): a later check says exactly what a full one
says, and anything the renderer reads that changes makes it render again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.sitekit import write_article

from dispatch.config import load_settings
from dispatch.errors import Problem, Severity
from dispatch.render import checkcache

ENV = {k: v for k, v in os.environ.items()
       if k not in ("DISPATCH_DATABASE_URL", "DISPATCH_SMTP_URL")}
ENV["COLUMNS"] = "200"
BUNDLED = Path(checkcache.__file__).resolve().parent.parent / "templates" / "email"
FRONT = "title: No alt\ndate: 2026-11-02T08:00:00\nsummary: An image without alt text."
# An image with no alt text (a warning) whose size cannot be read (another).
BODY = "Body.\n\n![](https://elsewhere.example/chart.png)\n\n## Key takeaway\n\nFine.\n"
CLIP = "email: HTML part is"


def dispatch(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "dispatch", *args, "--root", str(root)],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def said(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return result.returncode, result.stdout, result.stderr


def test_a_kept_check_says_what_a_full_one_says_until_an_input_changes(
        example_site: Path) -> None:
    assert dispatch(example_site, "run", "--once").returncode == 0
    write_article(example_site, "no-alt.md", FRONT, BODY)
    kept = example_site / ".dispatch" / checkcache.CHECK_FILE

    full = dispatch(example_site, "check")
    assert "has no alt text" in full.stderr and "pixel size unknown" in full.stderr
    assert kept.exists()
    assert said(dispatch(example_site, "check")) == said(full)

    # A template that makes every email too big for Gmail: reported at once.
    big = "<p>" + "plain words of filler " * 6000 + "</p>\n"
    template = (BUNDLED / "article.html").read_text(encoding="utf-8")
    site_template = example_site / "templates" / "email" / "article.html"
    site_template.write_text(template.replace("{% block content %}",
                                              "{% block content %}" + big, 1), encoding="utf-8")
    clipped = dispatch(example_site, "check")
    assert clipped.returncode == 1 and f"content/no-alt.md: {CLIP}" in clipped.stderr
    assert said(dispatch(example_site, "check")) == said(clipped)

    # Back as it was: the first answer again, whichever way it is found.
    site_template.unlink()
    assert said(dispatch(example_site, "check")) == said(full)

    # An article that changes is rendered again.
    write_article(example_site, "no-alt.md", FRONT, BODY + "\n" + big.replace("<p>", "\n"))
    grown = dispatch(example_site, "check")
    assert grown.returncode == 1 and f"content/no-alt.md: {CLIP}" in grown.stderr


def test_a_record_is_not_trusted_once_an_image_or_the_key_changes(example_site: Path) -> None:
    settings = load_settings(example_site)
    settings.state_dir.mkdir()
    url = f"{settings.site.url}/images/handwashing.jpg"
    found = [Problem("content/a.md", "something", 3, "email", "else", Severity.WARNING),
             Problem("templates/email/x.html", "other")]
    kept = checkcache.KeptChecks(settings, "kept.json")
    assert kept.problems("key", lambda: (found, [url, url])) == found
    kept.save()

    def again() -> checkcache.KeptChecks:
        return checkcache.KeptChecks(settings, "kept.json")

    assert again().kept("key") == found
    assert again().kept("another key") is None
    small = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + (3).to_bytes(4, "big") * 2 + b"\x08\2\0\0\0"
    (example_site / "static" / "images" / "handwashing.jpg").write_bytes(small)  # another size
    assert again().kept("key") is None


def test_nothing_is_kept_where_no_command_made_a_state_folder(example_site: Path) -> None:
    settings = load_settings(example_site)
    kept = checkcache.KeptChecks(settings, "kept.json")
    kept.problems("key", lambda: ([], []))
    kept.save()
    assert not settings.state_dir.exists()


def test_a_schedule_subject_mistake_is_reported_whether_kept_or_not(example_site: Path) -> None:
    assert dispatch(example_site, "run", "--once").returncode == 0
    schedules = example_site / "schedules.yaml"
    text = schedules.read_text(encoding="utf-8")
    fine = dispatch(example_site, "check")
    assert (example_site / ".dispatch" / checkcache.SUBJECTS_FILE).exists()
    assert said(dispatch(example_site, "check")) == said(fine)

    schedules.write_text(text.replace("{{ article.title }}", "{{ article.titel }}", 1),
                         encoding="utf-8")
    typo = dispatch(example_site, "check")
    assert typo.returncode == 1 and 'did you mean "article.title"' in typo.stderr, typo.stderr
    assert said(dispatch(example_site, "check")) == said(typo)

    # A site template that cannot be rendered: found, and then found kept.
    schedules.write_text(text, encoding="utf-8")
    assert said(dispatch(example_site, "check")) == said(fine)
    (example_site / "templates" / "email" / "digest.html").write_text(
        "{% extends \"base.html\" %}{% block content %}{{ nosuch.thing }}{% endblock %}",
        encoding="utf-8")
    broken = dispatch(example_site, "check")
    assert broken.returncode == 1 and "nosuch" in broken.stderr, broken.stderr
    assert said(dispatch(example_site, "check")) == said(broken)


def test_a_template_that_divides_by_zero_is_named_not_a_traceback(example_site: Path) -> None:
    (example_site / "templates" / "email" / "digest.html").write_text(
        "{% extends \"base.html\" %}{% block content %}\n{{ 1 / 0 }}{% endblock %}",
        encoding="utf-8")
    result = dispatch(example_site, "check")  # no Traceback (see dispatch())
    assert result.returncode == 1
    assert "templates/email/digest.html:2" in result.stderr, result.stderr
