"""The Starlette app factory.

Each area owns a module that exposes ``routes(settings, store) -> list of
routes``; the factory mounts every module listed in :data:`ROUTE_MODULES`, so
adding an area (unsubscribe, web views) is one line here and its own module.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from dispatch.config import Settings
from dispatch.store.engine import Store

ROUTE_MODULES: tuple[str, ...] = (
    "dispatch.web.index",
    "dispatch.web.feeds",
    "dispatch.web.unsubscribe",
    "dispatch.web.webview",
    "dispatch.web.admin",
    "dispatch.web.webhooks",
    "dispatch.web.signup",
    "dispatch.web.preferences",
    "dispatch.web.archive",
)


def create_app(settings: Settings, store: Store,
               modules: Sequence[str] = ROUTE_MODULES) -> Starlette:
    routes: list[BaseRoute] = []
    for name in modules:
        module = importlib.import_module(name)
        routes.extend(module.routes(settings, store))
    app = Starlette(routes=routes)
    app.state.settings = settings
    app.state.store = store
    return app
