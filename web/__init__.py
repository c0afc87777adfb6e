"""The HTTP layer of `tailor serve`: a Starlette (ASGI) app served by uvicorn, over one
:class:`engine.session.InteractiveSession`.

- ``app.py``: :func:`web.app.create_app`, the one place routes are registered (route modules, each with a
  ``routes(session, config)`` function).
- ``api.py``: the JSON API (query, search, like, tag, sync, explain, health).
- ``security.py``: Host, token, Origin and Content-Type checks, before any route runs.
- ``limits.py``: bodies read within size and time limits, JSON parsed within depth, fields validated, and
  the HTTP protocol with a deadline for request heads (half-open and slow connections).
- ``errors.py``: engine errors and HTTP refusals as statuses, in one place.

Limits and settings: :class:`engine.config.ServeConfig`.
"""
