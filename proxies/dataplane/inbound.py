"""An inbound request: from another sidecar (or an outside caller) to the local app.

``InboundExchange`` is the ``Exchange`` the inbound listener creates. Its ``begin`` checks
the request-target, meets the local service's own rate limit (per calling service and in
total, before the app sees the request) and sends it to the local app over a pooled
connection. The local app has no traffic policy of its own: no pool limits, no retries,
no outlier detection; a try that gets no response is answered 503 local-app-unavailable.
Its load (outstanding requests) counts while a connection is bound, for the admin port.
"""

from __future__ import annotations

from proxies import http1
from proxies.dataplane import errors
from proxies.dataplane.exchange import Exchange
from proxies.dataplane.interfaces import PAUSE_UPSTREAM_FULL, Pool, Upstream
from proxies.policy.schema import UNAUTHENTICATED
from proxies.traffic.authorization import Authorizer


class InboundExchange(Exchange):
    """One request to the local app."""

    outbound = False
    direction = "inbound"

    __slots__ = ()

    def begin(self) -> None:
        """Authorization, rate limit, then go to the local app."""
        origin = self._origin_form()
        if origin is None:
            return
        plane = self.plane
        authorizer = plane.inbound_authorizer
        if authorizer is not None and self._denied(authorizer, origin):
            return
        limiter = plane.inbound_limiter
        if limiter is not None and self._rate_limited(limiter, plane.service, False):
            return
        self.endpoint = plane.app_endpoint
        trace = self.trace
        head = http1.request_head(
            self.head, self.method, origin, trace.traceparent(), trace.tracestate, self.chunked_req
        )
        self.up_pending.insert(0, head)
        self.dispatch(False)

    def _denied(self, authorizer: Authorizer, origin: bytes) -> bool:
        """Decide by the caller's certificate, never its headers (proxies.traffic.authorization);
        the counts land on the edge the graph shows the request on."""
        caller = self.downstream.peer or UNAUTHENTICATED
        path = origin.partition(b"?")[0].decode("latin-1")
        verdict = authorizer.check(caller, self.method.decode("latin-1"), path, self._header)
        plane = self.plane
        rule = verdict.denied_by
        if rule is not None:
            plane.metrics.count_denied(rule, self.source, plane.service)
            self.event("authorization.denied", {"rule": rule, "caller": caller})
            self.answer(errors.denied(rule, plane.service))
            return True
        if verdict.audit:
            plane.metrics.count_audit_denied(self.source, plane.service)
            self.event("authorization.audit_denied",
                       {"rules": ",".join(authorizer.audit_rules), "caller": caller})
        return False

    def _header(self, name: bytes) -> bytes | None:
        """A request field by lower-case name, for header conditions (off the common path)."""
        return http1.field_value(self.head, name)

    def _attach(self, conn: Upstream, reused: bool) -> None:
        """Bind ``conn`` to this exchange; the local app's load counts while it is bound."""
        self.conn = conn
        self.conn_reused = reused
        conn.exchange = self
        endpoint = self.endpoint
        assert endpoint is not None
        endpoint.outstanding += 1
        if not self.downstream.feeding:
            self.flush_up()

    def detach(self) -> Upstream | None:
        """Unbind the current connection and return it (for the caller to release or close)."""
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exchange = None
            self.endpoint.outstanding -= 1  # type: ignore[union-attr]
            downstream = self.downstream
            if downstream.paused & PAUSE_UPSTREAM_FULL:  # no longer applies (rare: skip the call)
                downstream.resume(PAUSE_UPSTREAM_FULL)
        return conn

    def _reserve_connect(self, pool: Pool) -> bool:
        """A new connection to the local app may always be opened (it has no pool limits)."""
        return True

    def _connect_settled(self, conn: Upstream | None) -> None:
        """Nothing was held for the connect."""

    def end_try(self, ok: bool) -> None:
        """The try is over: a connection still being opened for it is stale."""
        self.try_gen += 1

    def tell_outlier_detector(self, status: int | None, gateway_error: bool) -> None:
        """The local app has no outlier detection: nothing to count."""

    def try_failed(self, error: str, reason: str, timeout_kind: str | None = None) -> None:
        """No response from the local app: it is unavailable (no retry inbound)."""
        endpoint = self.endpoint
        assert endpoint is not None
        self.answer(errors.local_app_unavailable(endpoint.address, reason))
