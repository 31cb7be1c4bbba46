"""The small web app: feeds, one-click unsubscribe and the web views of sent editions.

The app is :func:`dispatch.web.app.create_app`. This package imports nothing
itself: ``[web]``'s settings model lives here (``options.py``), and reading
dispatch.toml must not load Starlette.
"""
