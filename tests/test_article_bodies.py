"""A big site in bounded memory: bodies stay in the load cache until read,
and a cold load parses in a process pool.

Memory and time themselves are measured by ``bench/scale.py --suite articles``;
these tests check the behaviour that makes them possible.
"""

from __future__ import annotations

import concurrent.futures
import copy
import marshal
import pickle
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from tests.sitekit import write_article

from dispatch.config import load_settings
from dispatch.content import article as article_module
from dispatch.content import loader
from dispatch.content.cache import MemoryCache
from dispatch.content.loader import load_site
from dispatch.errors import ContentError
from dispatch.models import Article, StoredArticle
from dispatch.store import open_store
from dispatch.store.articles import StoreCache
from dispatch.store.schema import article_cache


def _write_site(root: Path, count: int) -> None:
    for index in range(count):
        write_article(root, f"{index // 10}/a{index:03d}.md",
                      f"title: Article {index}\ndate: 2026-05-{1 + index % 28:02d}\n"
                      f"category: C{index % 3}",
                      f"Body of article {index} with *emphasis*.[^1]\n\n"
                      f"## Key takeaway\n\nTake {index}.\n\n[^1]: Source {index}.\n")
    # One broken file and one with a warning, so problems travel too.
    write_article(root, "broken.md", "title: Broken\ndate: not a date")
    write_article(root, "odd.md", "title: Odd\ndate: 2026-05-02\nmood: happy", "Fine.\n")


def test_warm_articles_read_their_body_from_the_cache(database_url: str,
                                                       site_root: Path) -> None:
    _write_site(site_root, 12)
    settings = load_settings(site_root)
    store = open_store(database_url)
    cold = load_site(settings, StoreCache(store))
    plain = load_site(settings)  # no cache: every article parsed, body in memory
    warm = load_site(settings, StoreCache(store))
    assert warm.from_cache == 13 and cold.from_cache == 0
    # Cold and warm both hand out articles whose body stays in the store...
    assert all(type(a) is StoredArticle for a in cold.articles + warm.articles)
    assert all(type(a) is Article for a in plain.articles)
    # ...and they are the same articles, field for field, as a plain parse.
    assert warm.articles == plain.articles == cold.articles
    assert [a.body_html for a in warm.articles] == [a.body_html for a in plain.articles]
    assert [a.sources_html for a in warm.articles] == [a.sources_html for a in plain.articles]
    assert [a.body_markdown for a in warm.articles] == [
        a.body_markdown for a in plain.articles]
    assert [a.excerpt for a in warm.articles] == [a.excerpt for a in plain.articles]
    assert [a.body_length for a in warm.articles] == [len(a.body_html) for a in plain.articles]
    assert {str(p) for p in warm.problems} == {str(p) for p in plain.problems}
    assert len(warm.errors) == 1 and warm.errors[0].path == "content/broken.md"

    # The body really is read when asked for: change it in the store only.
    one = warm.by_slug["a005"]
    with store.write() as conn:
        conn.execute(update(article_cache).where(article_cache.c.source == one.source).values(
            body=marshal.dumps(("# New", "<p>New body</p>", "", "New body"))))
    assert StoreCache(store).body(one.source, one._sha256)[1] == "<p>New body</p>"
    fresh = load_site(settings, StoreCache(store)).by_slug["a005"]
    assert fresh.body_html == "<p>New body</p>" and fresh.title == one.title
    assert fresh.excerpt == "New body"
    store.dispose()


def test_a_body_gone_from_the_cache_is_a_clear_error(database_url: str,
                                                      site_root: Path) -> None:
    _write_site(site_root, 3)
    settings = load_settings(site_root)
    store = open_store(database_url)
    article = load_site(settings, StoreCache(store)).by_slug["a001"]
    # Another process re-parsed the edited file meanwhile and replaced the row.
    with store.write() as conn:
        conn.execute(delete(article_cache).where(article_cache.c.source == article.source))
    with pytest.raises(ContentError, match=r"content/0/a001\.md: changed while"):
        _ = article.body_html
    assert article.title == "Article 1"  # everything else is still at hand
    store.dispose()


def test_a_stored_article_copies_and_pickles_as_a_plain_one(tmp_path: Path,
                                                            site_root: Path) -> None:
    _write_site(site_root, 2)
    settings = load_settings(site_root)
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    stored = load_site(settings, StoreCache(store)).by_slug["a001"]
    for other in (pickle.loads(pickle.dumps(stored)), copy.deepcopy(stored), stored.plain()):
        assert type(other) is Article
        assert other == stored and stored == other and hash(other) == hash(stored)
        assert other.body_html == stored.body_html
    assert len({stored, stored.plain()}) == 1
    with pytest.raises(TypeError, match=r"StoredArticle\.make"):
        StoredArticle()
    store.dispose()


@pytest.mark.parametrize("with_cache", [True, False])
def test_the_process_pool_parses_exactly_what_one_process_does(
        site_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        with_cache: bool) -> None:
    _write_site(site_root, 30)
    settings = load_settings(site_root)
    serial = load_site(settings, MemoryCache())

    used: list[int] = []
    real = concurrent.futures.ProcessPoolExecutor

    def spy(workers: int, **kwargs: object) -> object:
        used.append(workers)
        return real(workers, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "POOL_FROM", 5)
    monkeypatch.setattr(loader, "_cores", lambda: 2)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", spy)
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    pooled = load_site(settings, StoreCache(store) if with_cache else None)
    assert used == [2]  # the pool ran, with a worker per core
    assert pooled.articles == serial.articles and len(pooled.articles) == 31
    assert [str(p) for p in pooled.problems] == [str(p) for p in serial.problems]
    assert [a.body_html for a in pooled.articles] == [a.body_html for a in serial.articles]
    if with_cache:
        assert load_site(settings, StoreCache(store)).from_cache == 31
    store.dispose()


def test_touched_files_are_hashed_not_parsed_again(site_root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _write_site(site_root, 4)
    settings = load_settings(site_root)
    store = open_store(f"sqlite:///{tmp_path / 't.db'}")
    first = load_site(settings, StoreCache(store))
    for path in (site_root / "content").rglob("*.md"):
        path.touch()  # new mtime, same bytes (a checkout)

    def no_parse(*args: object) -> object:
        raise AssertionError("parsed a file whose bytes did not change")

    monkeypatch.setattr(article_module, "build_article",
                        lambda *a: no_parse() if "broken" not in a[1] else (None, []))
    again = load_site(settings, StoreCache(store))
    assert again.from_cache == 5 and again.articles == first.articles
    assert load_site(settings, StoreCache(store)).from_cache == 5
    store.dispose()
