"""The small web app: feeds, one-click unsubscribe and the web views of sent editions."""

from dispatch.web.app import create_app

__all__ = ["create_app"]
