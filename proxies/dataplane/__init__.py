"""The data path: client connections, exchanges, upstream connections and their pools.

Imports run one way (an import-linter contract keeps it so):

- ``plane``: ``DataPlane``, what one sidecar's connections share (the compiled policy and
  endpoints, pools, counters) and the background sweep;
- ``downstream``: ``DownstreamConnection``, one client connection (parsing, limits,
  pipelining, refusals), on the codec side ``request_reader``;
- ``inbound`` / ``outbound`` (with ``outbound_tries``): the two kinds of exchange, to the
  local app and under a destination's traffic policy, retries included;
- ``upstream``: ``UpstreamConnection`` and ``ConnectionPool``;
- ``endings``: what happens to an exchange when a peer fails it or time runs out;
- ``exchange``: what both kinds of exchange share;
- ``interfaces``: the shared constants and the Protocols the back-references (to the
  plane, to a client connection, to an upstream connection) are typed against;
- ``errors`` (the sidecar's own responses), ``limits``, ``metrics``, ``healthcheck``.
"""
