"""meshui: the dashboard and control plane of the mesh, a Django project.

Where things live:

- this package, the project: ``settings.py`` (every setting from the environment through
  ``env.py``; ``channel_layers.py`` derives CHANNEL_LAYERS), ``urls.py``, ``asgi.py`` with
  ``routing.py`` (the WebSocket routes), ``celery.py``, the security-headers middleware
  (``security.py``), and what every app shares: ``broadcast.py`` (Channels groups) and
  ``redis_clients.py``.
- ``accounts/``: logins, their lockout, and who may read or change (``access.py``).
- ``registry/``: services, sidecar instances and the control channel (models, consumers,
  tasks, admin, API).
- ``alerts/``: alert rules, their state per target, the evaluation beat task, the API.
- ``dashboard/``: the pages (views, urls, templates/dashboard/, static/dashboard/), the
  live graph socket, the Plotly figure and the health scale it shares with the page
  (``health.py``); its graph API.
- ``api/``: the /api/v1/ django-ninja API that mounts every app's ``api.py`` router.
- ``demo/``: ``python -m meshui.demo``, the whole mesh on one machine.

Importing this package imports nothing else (no Django, no Celery): the sidecar and other
non-Django users may import ``meshui.demo`` helpers cheaply.
"""
