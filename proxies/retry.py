"""When the sidecar may send a request again, and how much of it it keeps to do so.

A request may be retried when it has no body or its method is idempotent (RFC 9110
§9.2.2) and every byte already sent upstream is still in the exchange's replay buffer:
at most ``REPLAY_LIMIT`` bytes, kept by ``Exchange.flush_up`` inline because that is the
hot path. Two failures are retried, both before any response byte arrived:

- a pooled keep-alive connection that the upstream had already closed: the request never
  reached an application, so it goes once more on a fresh connection to the same instance;
- a failed connect to an instance of an outbound service: it goes to another instance,
  at most ``MAX_ATTEMPTS`` in all, so a dead instance costs one extra connect, not a storm.

Pure: the functions take values and return a decision; the exchange acts on it.
"""

from __future__ import annotations

from proxies import balancer
from proxies.endpoints import Endpoint, ServiceEndpoints

REPLAY_LIMIT = 64 * 1024  # request bytes kept for a retry; past this a retry is impossible
MAX_ATTEMPTS = 2  # instances tried for one request after connect failures


def retry_on_fresh_connection(
    conn_reused: bool, retried_fresh: bool, retry_ok: bool, replayable: bool
) -> bool:
    """Whether a request whose pooled connection closed before any response goes again."""
    return conn_reused and not retried_fresh and retry_ok and replayable


def next_instance(
    entry: ServiceEndpoints,
    failed: Endpoint,
    now: float,
    attempts: int,
    retry_ok: bool,
    replayable: bool,
) -> Endpoint | None:
    """The instance to try after a connect to ``failed`` failed, or None to give up."""
    if not (retry_ok and attempts < MAX_ATTEMPTS and replayable):
        return None
    return balancer.pick(entry, now, exclude=failed)
