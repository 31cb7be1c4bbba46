"""``dispatch social SLUG``: each configured network's post, measured;
``--queue`` announces the article by hand."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from dispatch.cli.base import Site, console, missing_article, now, site_command
from dispatch.config import Settings
from dispatch.errors import ContentError, InputError, Problem
from dispatch.models import Article
from dispatch.pipeline import load
from dispatch.social import ComposedPost, compose_post, load_social, queue_by_hand
from dispatch.social.queue import posts_for, unfit_of


def _current(settings: Settings, article: Article, name: str) -> ComposedPost | str:
    """The post ``name`` would get now, or why it cannot be written."""
    try:
        return compose_post(settings, article, name)
    except ContentError as exc:  # this article and network only; the others still show
        return "; ".join(p.message for p in exc.problems) or str(exc)


def _stored(row: dict[str, Any] | None) -> ComposedPost | None:
    """The post frozen in the queue row: what was (or will be) posted."""
    if row is None or unfit_of(row) is not None:
        return None
    return ComposedPost.from_json(json.loads(row["payload"]))


def _queue_state(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"status": row["status"], "attempts": row["attempts"],
            "remote_url": row["remote_url"], "last_error": row["last_error"],
            "could_not_be_written": unfit_of(row) is not None}


@click.command()
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print the posts as JSON.")
@click.option("--network", "networks", multiple=True, help="Only this network (repeatable).")
@click.option("--queue", "queue_now", is_flag=True,
              help="Announce this published article now: queue its post for each network "
                   "(once per network; a failed post is written again and re-queued). "
                   "The next `dispatch run` pass sends it.")
@site_command
def social(site: Site, slug: str, as_json: bool, networks: tuple[str, ...],
           queue_now: bool) -> None:
    """Show the post each configured network gets for article SLUG.

    Once a post is queued, the text shown is the one stored in the queue
    (what is or was posted), even if the article has been edited since.
    """
    settings = site.settings
    social_settings = load_social(settings)
    result = load(settings, site.store)
    article = next((a for a in result.articles if a.slug == slug), None)
    if article is None:
        if result.errors_for_slug(slug):
            raise missing_article(result, slug)
        known = ", ".join(sorted(a.slug for a in result.articles)) or "none"
        raise InputError(f"no article with slug {slug!r} (known: {known})")
    chosen = networks or tuple(n.name for n in social_settings.networks)
    if not chosen:
        raise InputError("no social networks are configured: add a [social.<network>] table "
                         "to dispatch.toml")
    current = {name: _current(settings, article, name) for name in chosen}
    if queue_now:
        moment = now()
        if not article.is_published(moment):
            raise InputError(f"{slug} is not published yet ({article.status}, dated "
                             f"{article.date.isoformat()}): nothing to announce")
        from dispatch.checks import article_errors

        own = article_errors(settings, [article]).get(article.source)
        if own:  # the same rule as a pass: an article with errors reaches no channel
            raise InputError([*own, Problem(article.source, f"{slug!r} has errors: it "
                                            "reaches no feed, post or email until they "
                                            "are fixed")])
        for outcome in queue_by_hand(site.store, settings, article, moment, list(chosen)):
            console.print(f"{outcome.network}: {outcome.outcome}"
                          + (f": {outcome.detail}" if outcome.detail else ""), markup=False)
        return
    rows = {row["network"]: row for row in posts_for(site.store, slug)}
    if as_json:
        click.echo(json.dumps([_as_json(name, article.slug, current[name], rows.get(name))
                               for name in chosen], ensure_ascii=False, indent=2))
        return
    for name in chosen:
        _print(name, current[name], rows.get(name))


def _as_json(name: str, slug: str, now_post: ComposedPost | str,
             row: dict[str, Any] | None) -> dict[str, Any]:
    stored = _stored(row)
    post = stored or (now_post if isinstance(now_post, ComposedPost) else None)
    data: dict[str, Any] = (post.to_json() if post is not None
                            else {"network": name, "slug": slug})
    data["queue"] = _queue_state(row)
    data["error"] = now_post if isinstance(now_post, str) else None
    differs = stored is not None and (not isinstance(now_post, ComposedPost)
                                      or now_post.text != stored.text)
    data["current_differs"] = differs
    if differs:
        data["current"] = now_post.to_json() if isinstance(now_post, ComposedPost) else None
    return data


def _print(name: str, now_post: ComposedPost | str, row: dict[str, Any] | None) -> None:
    stored = _stored(row)
    unfit = unfit_of(row) if row is not None else None
    if unfit is not None:
        console.print(f"── {name}: failed, could not be written: {unfit.reason}", markup=False)
        if isinstance(now_post, ComposedPost):
            console.print("It can be written now (`--queue` queues it; the next pass does "
                          "too, as the settings or the article changed):", markup=False)
            _body(now_post)
        console.print()
        return
    if stored is None and isinstance(now_post, str):
        console.print(f"── {name}: cannot be written: {now_post}", markup=False)
        console.print()
        return
    post = stored or now_post
    assert isinstance(post, ComposedPost)
    state = "not queued" if row is None else row["status"]
    if row is not None and row["status"] == "failed" and row["last_error"]:
        state += f" ({row['last_error']})"
    console.print(f"── {post.network} ({post.kind}): {post.length}/{post.limit}, "
                  f"from {post.source}{', shortened' if post.truncated else ''}, {state}",
                  markup=False)
    _body(post)
    if stored is not None and (not isinstance(now_post, ComposedPost)
                               or now_post.text != stored.text):
        console.print(f"(the article now gives a different {name} post; the text above is "
                      "the stored one, and an edit never posts again)", markup=False)
    console.print()


def _body(post: ComposedPost) -> None:
    console.print(post.text, markup=False)
    if post.facets:
        table = Table("facet", "bytes", "value", show_edge=False)
        for facet in post.facets:
            table.add_row(facet.kind, f"{facet.byte_start}–{facet.byte_end}", facet.value)
        console.print(table)
