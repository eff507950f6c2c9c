"""The mesh as the control plane describes it to a sidecar: its names and its instances.

``schema`` is the one definition of a valid service name, version, proxy id and address,
and of the control channel's frame limits; meshui validates what it registers with the very
same functions. ``endpoints`` is the set of instances per service in force, an immutable
snapshot swapped by reference. Like ``proxies.policy``, it imports nothing else of
``proxies``: every layer above may use it.
"""
