"""The control channel: the sidecar's WebSocket to meshui (docs/control-channel.md).

``client`` keeps the connection, applies the endpoints and config revisions meshui sends
(ACK, or NACK with the field at fault while the last good state stays) and reports the
sidecar's state. What may travel on it (names, addresses, frame limits) is
``proxies.mesh.schema``, which meshui imports too.
"""
