"""Loading articles: frontmatter, Markdown, key takeaway, validation, cache."""

from dispatch.content.loader import LoadResult, load_site

__all__ = ["LoadResult", "load_site"]
