"""The small web app: feeds now; unsubscribe and web views mount beside them."""

from dispatch.web.app import create_app

__all__ = ["create_app"]
