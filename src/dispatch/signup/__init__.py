"""The reader's side of the lists: signup with double opt-in, consent records,
abuse limits, preferences, erasure and the data export.

The web pages (``dispatch.web.signup``, ``dispatch.web.preferences``) and the
CLI call these modules; nothing here reads the clock or the request.
"""
