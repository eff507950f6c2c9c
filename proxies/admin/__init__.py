"""The admin port (loopback): readiness, Prometheus metrics, the config in force, endpoints.

``server`` is the listener's protocol; ``views`` are functions of the few parts of a running
sidecar they read (a narrow Protocol), so the sidecar imports admin and never the reverse.
"""
