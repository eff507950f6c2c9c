"""The meshui sidecar: an HTTP/1.1 proxy beside every service instance (``python -m proxies``).

Packages by role, each importing only those below it (docs/sidecar.md, "Code layout"):
``admin`` and ``control`` (the admin port, the control channel), ``dataplane``
(connections, exchanges, pools), ``traffic`` and ``telemetry`` (pure decisions; what is
recorded and exported), ``policy`` and ``mesh`` (the traffic policy document; names and
the endpoint set). ``sidecar`` runs one process, ``config`` reads its flags, ``http1`` is
the codec.
"""
