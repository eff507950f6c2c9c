"""Traffic decisions: pure functions and small state machines, values and a clock in, a decision out.

Which instance (``balancer``), which route and version (``router``), whether to eject an
instance (``outlier``), fail fast (``circuit``), refuse for a rate (``ratelimit``), inject a
fault (``faults``) or try again and when (``retry``, with its budget); ``destination``
compiles one destination's policy and instances into the snapshot the data path reads.
Nothing here does I/O or imports the data path: a new balancer is a class in ``balancer``,
one line in its ``BALANCERS`` table and its name in ``proxies.policy.schema.LoadBalancer``.
"""
