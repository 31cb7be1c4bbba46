"""``dispatch social SLUG``: each configured network's post, measured."""

from __future__ import annotations

import json

import click
from rich.table import Table

from dispatch.cli.base import Site, console, site_command
from dispatch.errors import InputError
from dispatch.pipeline import load
from dispatch.social import compose_post, load_social
from dispatch.social.queue import posts_for


@click.command()
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print the posts as JSON.")
@click.option("--network", "networks", multiple=True, help="Only this network (repeatable).")
@site_command
def social(site: Site, slug: str, as_json: bool, networks: tuple[str, ...]) -> None:
    """Show the post each configured network gets for article SLUG."""
    settings = site.settings
    social_settings = load_social(settings)
    result = load(settings, site.store)
    article = next((a for a in result.articles if a.slug == slug), None)
    if article is None:
        known = ", ".join(sorted(a.slug for a in result.articles)) or "none"
        raise InputError(f"no article with slug {slug!r} (known: {known})")
    chosen = networks or tuple(n.name for n in social_settings.networks)
    if not chosen:
        raise InputError("no social networks are configured: add a [social.<network>] table "
                         "to dispatch.toml")
    posts = [compose_post(settings, article, name) for name in chosen]
    queued = {row["network"]: row for row in posts_for(site.store, slug)}
    if as_json:
        out = []
        for post in posts:
            data = post.to_json()
            row = queued.get(post.network)
            data["queue"] = None if row is None else {
                "status": row["status"], "attempts": row["attempts"],
                "remote_url": row["remote_url"], "last_error": row["last_error"]}
            out.append(data)
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    for post in posts:
        row = queued.get(post.network)
        state = "not queued" if row is None else row["status"]
        console.print(f"── {post.network} ({post.kind}): {post.length}/{post.limit}, "
                      f"from {post.source}{', shortened' if post.truncated else ''}, {state}",
                      markup=False)
        console.print(post.text, markup=False)
        if post.facets:
            table = Table("facet", "bytes", "value", show_edge=False)
            for facet in post.facets:
                table.add_row(facet.kind, f"{facet.byte_start}–{facet.byte_end}", facet.value)
            console.print(table)
        console.print()
