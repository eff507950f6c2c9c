"""The JSON API under /api/v1/: one django-ninja API that every app adds its router to.

- ``v1.py``: the ``NinjaAPI`` (OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs) and
  the list of app routers it mounts. A new endpoint goes in its app's ``api.py`` (a
  ``Router``), with its response schemas in the app's ``schemas.py``; a new app's router is
  one line in ``v1.py``.
- ``auth.py``: who may read and write (session, then CSRF on writes).
- ``errors.py``: the ``{"error", "detail"}`` shape, its codes and handlers.
- ``methods.py``: HEAD and the 405 of undeclared methods, after the access checks.
"""
