"""Every kind of bad article the issue names gets a located, clear problem,
and never stops the other articles from loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.sitekit import write_article

from dispatch.config import load_settings
from dispatch.content.loader import MAX_FILE_BYTES, LoadResult, load_site
from dispatch.errors import Problem

GOOD = """\
title: A good article
date: 2026-01-05
"""
BODY = "Intro paragraph.\n\n## Key takeaway\n\nDo the thing.\n"


def load(root: Path) -> LoadResult:
    return load_site(load_settings(root))


def problems_for(result: LoadResult, source: str) -> list[Problem]:
    return [p for p in result.problems if p.path == source]


def only_error(result: LoadResult, source: str) -> Problem:
    errors = [p for p in problems_for(result, source) if p.is_error]
    assert len(errors) == 1, errors
    return errors[0]


def test_good_article_loads_cleanly(site_root: Path) -> None:
    write_article(site_root, "good.md", GOOD, BODY)
    result = load(site_root)
    assert [a.slug for a in result.articles] == ["good"]
    assert result.problems == ()


def test_no_frontmatter(site_root: Path) -> None:
    (site_root / "content" / "plain.md").write_text("Just text\n", encoding="utf-8")
    write_article(site_root, "good.md", GOOD, BODY)
    result = load(site_root)
    problem = only_error(result, "content/plain.md")
    assert "no frontmatter" in str(problem) and problem.line == 1
    assert [a.slug for a in result.articles] == ["good"]


def test_yaml_syntax_error_reports_the_line_in_the_file(site_root: Path) -> None:
    write_article(site_root, "bad.md", "title: ok\ndate: 2026-01-01\ntags: [a, b\nauthor: x", BODY)
    problem = only_error(load(site_root), "content/bad.md")
    assert "YAML syntax error" in problem.message
    # The frontmatter starts on line 2 of the file; the unclosed list is on
    # line 4 and YAML notices at line 5.
    assert problem.line in (4, 5)
    assert str(problem).startswith(f"content/bad.md:{problem.line}: ")


@pytest.mark.parametrize("missing", ["title", "date"])
def test_missing_required_field(site_root: Path, missing: str) -> None:
    fields = {"title": "title: Hello", "date": "date: 2026-01-01"}
    del fields[missing]
    write_article(site_root, "a.md", "\n".join(fields.values()), BODY)
    problem = only_error(load(site_root), "content/a.md")
    assert problem.field == missing and problem.message == "missing"


def test_date_that_is_not_a_date(site_root: Path) -> None:
    write_article(site_root, "a.md", "title: Hi\nauthor: me\ndate: next tuesday", BODY)
    problem = only_error(load(site_root), "content/a.md")
    assert problem.field == "date" and problem.line == 4
    assert "'next tuesday' is not a date" in problem.message
    assert problem.expected and "ISO 8601" in problem.expected


def test_tags_as_a_string_are_fine_as_a_number_are_not(site_root: Path) -> None:
    write_article(site_root, "words.md", GOOD + "tags: sleep, heart health", BODY)
    write_article(site_root, "number.md", "title: N\ndate: 2026-01-02\ntags: 42", BODY)
    result = load(site_root)
    assert result.by_slug["words"].tags == ("sleep", "heart health")
    problem = only_error(result, "content/number.md")
    assert problem.field == "tags" and problem.line == 4


@pytest.mark.parametrize(("line", "field"), [
    ("title: 12", "title"), ("email: maybe", "email"), ("status: live", "status"),
    ("social: just text", "social"), ("category: [a, b]", "category"),
])
def test_wrong_types(site_root: Path, line: str, field: str) -> None:
    frontmatter = GOOD if not line.startswith("title") else "date: 2026-01-05"
    write_article(site_root, "a.md", f"{frontmatter}\n{line}", BODY)
    assert only_error(load(site_root), "content/a.md").field == field


def test_unknown_key_is_a_warning_with_a_suggestion(site_root: Path) -> None:
    write_article(site_root, "a.md", GOOD + "catgory: Sleep", BODY)
    result = load(site_root)
    assert [a.slug for a in result.articles] == ["a"]
    (warning,) = problems_for(result, "content/a.md")
    assert not warning.is_error
    assert warning.field == "catgory" and warning.line == 4
    assert "did you mean 'category'" in str(warning)


def test_empty_body(site_root: Path) -> None:
    write_article(site_root, "a.md", GOOD, "\n  \n")
    problem = only_error(load(site_root), "content/a.md")
    assert problem.field == "body" and "no body" in problem.message


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_not_utf8_names_the_byte_offset(site_root: Path, bom: bytes) -> None:
    data = bom + b"---\ntitle: caf\xe9\ndate: 2026-01-01\n---\nBody\n"
    (site_root / "content" / "latin1.md").write_bytes(data)
    problem = only_error(load(site_root), "content/latin1.md")
    offset = data.index(b"\xe9")
    assert f"byte 0xe9 at byte offset {offset}" in problem.message
    assert problem.line == 2


def test_utf8_bom_is_accepted(site_root: Path) -> None:
    path = write_article(site_root, "bom.md", GOOD, BODY)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = load(site_root)
    assert [a.title for a in result.articles] == ["A good article"]
    assert result.errors == ()


def test_duplicate_slugs_name_both_files(site_root: Path) -> None:
    write_article(site_root, "one.md", GOOD + "slug: same", BODY)
    write_article(site_root, "sub/two.md", "title: Two\ndate: 2026-01-06\nslug: same", BODY)
    write_article(site_root, "other.md", GOOD, BODY)
    result = load(site_root)
    # one.md has the earlier date: it keeps the slug; the newcomer is refused
    # with both files named (tests/test_content_slugs.py has the whole rule).
    assert [p for p in problems_for(result, "content/one.md") if p.is_error] == []
    second = only_error(result, "content/sub/two.md")
    assert "content/one.md" in second.message and second.path == "content/sub/two.md"
    assert sorted(a.source for a in result.articles) == ["content/one.md", "content/other.md"]


@pytest.mark.parametrize("slug", ["../x", "/etc/passwd", "a/b", ".hidden", "a\\b"])
def test_slug_that_would_escape_the_output_folder(site_root: Path, slug: str) -> None:
    write_article(site_root, "a.md", GOOD + f"slug: '{slug}'", BODY)
    problem = only_error(load(site_root), "content/a.md")
    assert problem.field == "slug" and problem.line == 4


@pytest.mark.parametrize(
    "title", ['"Two\\nlines"', '"Bell\\a"', '"Tab\\there"', "|\n  block\n  title",
              '"Next\\Nline"', '"Line\\Lseparator"']
)
def test_control_characters_or_line_breaks_in_title(site_root: Path, title: str) -> None:
    write_article(site_root, "a.md", f"date: 2026-01-05\ntitle: {title}", BODY)
    problem = only_error(load(site_root), "content/a.md")
    assert problem.field == "title" and "email headers" in problem.message


def test_symlink_outside_content_is_refused(site_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text(f"---\n{GOOD}---\n{BODY}", encoding="utf-8")
    os.symlink(outside, site_root / "content" / "link.md")
    inside = write_article(site_root, "real.md", "title: Real\ndate: 2026-01-02", BODY)
    os.symlink(inside, site_root / "content" / "alias.md")
    result = load(site_root)
    problem = only_error(result, "content/link.md")
    assert "outside content/" in problem.message
    # A link that stays inside content/ is an ordinary file (and then a
    # duplicate slug? no: slugs come from the link's own name).
    assert {a.slug for a in result.articles} == {"real", "alias"}


def test_symlink_loops_and_linked_folders_are_reported_and_the_rest_loads(
        site_root: Path, tmp_path: Path) -> None:
    content = site_root / "content"
    os.symlink("self.md", content / "self.md")  # a link to itself
    os.symlink("b.md", content / "a.md")
    os.symlink("a.md", content / "b.md")  # two links to each other
    elsewhere = tmp_path / "drafts"
    elsewhere.mkdir()
    (elsewhere / "x.md").write_text(f"---\n{GOOD}---\n{BODY}", encoding="utf-8")
    os.symlink(elsewhere, content / "drafts")  # a folder: never followed
    write_article(site_root, "ok.md", "title: Ok\ndate: 2026-01-02", BODY)
    result = load(site_root)
    assert [a.slug for a in result.articles] == ["ok"]
    for source in ("content/self.md", "content/a.md", "content/b.md"):
        assert "loop" in only_error(result, source).message
    (folder,) = [p for p in result.warnings if p.path == "content/drafts"]
    assert "not followed" in folder.message


def test_dispatch_check_reports_a_symlink_loop_without_a_traceback(site_root: Path) -> None:
    from click.testing import CliRunner

    from dispatch.cli import main

    os.symlink("b.md", site_root / "content" / "a.md")
    os.symlink("a.md", site_root / "content" / "b.md")
    result = CliRunner().invoke(main, ["check", "--root", str(site_root)])
    assert isinstance(result.exception, SystemExit), result.output  # not a RuntimeError
    assert result.exit_code == 1
    assert "content/a.md: symlink loop" in result.output
    assert "2 article(s) with errors reach no feed" in result.output


def test_a_repeated_key_is_a_warning_naming_the_line_that_wins(site_root: Path) -> None:
    write_article(site_root, "a.md", "title: First\ndate: 2026-01-05\ntitle: Second", BODY)
    result = load(site_root)
    (warning,) = [p for p in result.warnings if p.field == "title"]
    assert warning.line == 4 and "more than once" in warning.message
    assert result.articles[0].title == "Second"


def test_a_named_pipe_is_skipped_not_read(site_root: Path) -> None:
    os.mkfifo(site_root / "content" / "pipe.md")  # reading it would block for ever
    write_article(site_root, "ok.md", "title: Ok\ndate: 2026-01-02", BODY)
    result = load(site_root)
    assert [a.slug for a in result.articles] == ["ok"]
    assert "not a regular file" in only_error(result, "content/pipe.md").message


def test_file_over_2_mb_is_refused(site_root: Path) -> None:
    write_article(site_root, "huge.md", GOOD, "x" * (MAX_FILE_BYTES + 1))
    write_article(site_root, "ok.md", "title: Ok\ndate: 2026-01-02", BODY)
    result = load(site_root)
    assert "refused" in only_error(result, "content/huge.md").message
    assert [a.slug for a in result.articles] == ["ok"]


def test_missing_key_takeaway_is_a_warning(site_root: Path) -> None:
    write_article(site_root, "a.md", GOOD, "No takeaway here.\n")
    result = load(site_root)
    (warning,) = problems_for(result, "content/a.md")
    assert not warning.is_error and "Key takeaway" in warning.message
    assert result.by_slug["a"].takeaway is None


def test_image_without_alt_text_is_a_warning_with_its_line(site_root: Path) -> None:
    write_article(site_root, "a.md", GOOD, BODY + "\nSee ![](chart.png) here.\n")
    warnings = [p for p in load(site_root).problems if "alt text" in p.message]
    assert len(warnings) == 1 and warnings[0].line == 11


def test_xml_illegal_control_characters_are_removed_and_reported(site_root: Path) -> None:
    write_article(site_root, "a.md", GOOD, "Bad\x0bchar.\n\n## Key takeaway\n\nOk.\n")
    result = load(site_root)
    assert "\x0b" not in result.by_slug["a"].body_html
    (warning,) = [p for p in result.problems if "U+000B" in p.message]
    assert warning.line == 5 and not warning.is_error


def test_one_bad_file_never_stops_the_others(site_root: Path) -> None:
    for index in range(5):
        write_article(site_root, f"good{index}.md", f"title: G{index}\ndate: 2026-01-0{index + 1}",
                      BODY)
    write_article(site_root, "broken.md", "title: [unclosed\ndate: 2026-01-01", BODY)
    result = load(site_root)
    assert len(result.articles) == 5
    assert len(result.errors) == 1 and result.errors[0].path == "content/broken.md"


def test_a_script_in_the_frontmatter_takeaway_is_removed_everywhere_and_reported(
        site_root: Path) -> None:
    write_article(site_root, "a.md", "title: A\ndate: 2026-01-05\ntakeaway: 'Walk "
                  "<script>alert(1)</script> <style>p{}</style>ten minutes after meals.'", BODY)
    result = load(site_root)
    (article,) = result.articles
    assert article.takeaway is not None
    for text in (article.takeaway.text, article.takeaway.html):
        assert "alert" not in text and "p{}" not in text
    assert " ".join(article.takeaway.text.split()) == "Walk ten minutes after meals."
    warnings = [p for p in result.warnings if p.field == "takeaway"]
    assert warnings and all(w.line == 4 and "scripts" in w.message for w in warnings)


@pytest.mark.parametrize("image", ["javascript:alert(1)", "JavaScript:alert(1)",
                                   "data:text/html,<script>alert(1)</script>",
                                   "vbscript:msgbox(1)", "file:///etc/passwd"])
def test_a_hero_image_that_is_no_web_address_is_an_error(site_root: Path, image: str) -> None:
    """The body's links pass the sanitiser, but the hero image went as it was
    into the feeds (RSS enclosure, Atom link, JSON image) and the email."""
    write_article(site_root, "a.md", f"{GOOD}image: '{image}'\nimage_alt: A photo", BODY)
    result = load(site_root)
    problem = only_error(result, "content/a.md")
    assert problem.field == "image" and problem.line == 4
    assert "is not a web address or a path on the site" in problem.message
    assert not result.articles


@pytest.mark.parametrize(("image", "url"), [
    ("/images/a.jpg", "https://journal.test/images/a.jpg"),
    ("images/a:b.jpg", "https://journal.test/images/a:b.jpg"),
    ("HTTPS://cdn.example/x.jpg", "HTTPS://cdn.example/x.jpg"),
    ("//cdn.example/x.jpg", "https://cdn.example/x.jpg"),
])
def test_web_and_site_images_are_kept(site_root: Path, image: str, url: str) -> None:
    write_article(site_root, "a.md", f"{GOOD}image: '{image}'\nimage_alt: A photo", BODY)
    (article,) = load(site_root).articles
    assert article.image == url


def test_a_social_override_that_is_not_text_says_so_not_that_social_is_no_mapping(
        site_root: Path) -> None:
    write_article(site_root, "a.md", GOOD + "social:\n  mastodn:\n    text: Hi\n  bluesky: Ok",
                  BODY)
    problem = only_error(load(site_root), "content/a.md")
    assert problem.field == "social" and problem.line == 4
    assert problem.message == "the override for 'mastodn' is {'text': 'Hi'}, not the post's text"
    assert "not a mapping" not in str(problem)


def test_updated_before_date_is_a_warning_naming_its_line(site_root: Path) -> None:
    write_article(site_root, "a.md", GOOD + "author: me\nupdated: 2025-12-01", BODY)
    write_article(site_root, "b.md", GOOD + "updated: 2026-01-05", BODY)
    result = load(site_root)
    assert [a.slug for a in result.articles] == ["a", "b"]
    (warning,) = problems_for(result, "content/a.md")
    assert not warning.is_error
    assert (warning.field, warning.line) == ("updated", 5)
    assert "earlier than the date" in warning.message
    assert problems_for(result, "content/b.md") == []
