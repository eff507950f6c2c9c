"""The control channel: one WebSocket per sidecar (docs/control-channel.md)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from meshui.broadcast import PROXIES_GROUP, SERVICE_RESTART, leave_group
from meshui.identity import issuance, joining
from meshui.identity.authority import acurrent_authority
from meshui.identity.certs import CaProblem
from meshui.identity.csr import CsrRefused
from meshui.identity.joining import IDENTITY_CLOSE, TOKEN_CLOSE, Grant, TokenRefused
from meshui.policy.push import alatest_published, apublished_config, current_config
from meshui.redis_clients import DATA_SOURCE_ERRORS
from meshui.registry import claims, ejections, instance_state
from meshui.registry.control_writes import writer as control_writes
from meshui.registry.endpoints import apublish_endpoints
from meshui.registry.frames import (
    BAD_FIELD,
    CA_UNAVAILABLE,
    EXPORT_TRACES,
    HELLO_FIRST,
    IDENTITY_MISMATCH,
    RATE_LIMITED,
    TOKEN_REVOKED,
    Ack,
    Csr,
    FrameError,
    Heartbeat,
    Hello,
    Nack,
    parse_frame,
)
from meshui.registry.plaintext import refuse_plaintext
from proxies.mesh.schema import trace_ids_problem

logger = logging.getLogger(__name__)


def bearer_token(scope: dict[str, Any]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` handshake header, if any."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def peer(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown peer"


claim = database_sync_to_async(claims.claim)
release = database_sync_to_async(claims.release)
read_current_config = database_sync_to_async(current_config)
admit = database_sync_to_async(joining.admit)
issue_certificate = database_sync_to_async(issuance.issue)

# A close with SERVICE_RESTART (meshui itself shutting down) leaves the instance
# registered: it says hello to the next process, which takes its row over, and the restart
# hold waits for it (settle.py); if it never returns, the stale sweep evicts it. A client
# that sends 1012 itself only delays its own eviction, as a half-dead socket would.

# Close code sent to a connection whose instance was taken over by a newer one.
SUPERSEDED = 4409
# Error frames logged per connection; later ones are only answered.
LOGGED_ERRORS = 10
# export_traces frames sent to one sidecar per second at most (the collectors' keep relays
# send a few; this bounds what any number of them can make one connection carry).
EXPORT_FRAMES_PER_S = 10
# CSRs one connection may send a minute (a sidecar sends one per two thirds of a certificate
# lifetime, and one after each reconnect); more are answered rate_limited, without a
# database read. A lifetime short enough to need more (MESHUI_CERT_LIFETIME_S of a few
# seconds, as rotation tests set) raises the rate to twice its renewals: the bound stops a
# sidecar gone wrong, never one renewing on schedule.
CSRS_PER_MINUTE = 6
_clock = time.monotonic  # the export_traces and CSR rates' clock (tests move it)


class ControlConsumer(AsyncWebsocketConsumer):
    """Registers a sidecar, keeps its instance live, and pushes it endpoints and policy."""

    proxy_id: str | None = None
    endpoints_sent = 0
    config_sent = 0  # the newest policy revision sent on this connection
    errors = 0  # error frames sent on this connection
    ejections_reported = False  # whether Redis holds an ejection report of this connection
    tail_keep = False  # the sidecar said it holds a ring of recent spans (hello.tail_keep)
    export_frames = 0  # export_traces frames sent on this connection (each one's id)
    export_nacks = 0  # ... refused by the sidecar
    export_skipped = 0  # ... not sent: over EXPORT_FRAMES_PER_S
    _export_tokens = float(EXPORT_FRAMES_PER_S)
    _export_at = 0.0
    service = ""  # the hello's service
    grant: Grant | None = None  # what the handshake's join token allows
    token_group: str | None = None  # the channel-layer group of the token's connections
    _csr_tokens = float(CSRS_PER_MINUTE)
    _csr_at: float | None = None
    state_reported = False  # whether Redis holds a state report of this connection
    reported_services: frozenset[str] = frozenset()  # the services its last report listed

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch, without its database clean-up before every message: that is a
        hop to the database thread for each frame and each group message (at 1000 sidecars,
        a fifth of meshui's time per revision), and this consumer reaches the database only
        through ``database_sync_to_async``, which cleans up around each call itself."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        """A join token's handshake (identity/joining.py), over TLS in production
        (registry/plaintext.py); anything else is refused before accept(), which the client
        sees as HTTP 403."""
        if await refuse_plaintext(self.scope, self.base_send):
            return
        token = bearer_token(self.scope)
        token_hash = joining.presented_digest(token)
        if token_hash is None:
            await self.refuse_handshake("missing token" if token is None
                                        else "not a join token (mjt_...)")
            return
        # Into the token's group before its row is read: a revocation committed after the
        # read closes this connection through the group (joining.py).
        self.token_group = joining.token_group(token_hash)
        await self.channel_layer.group_add(self.token_group, self.channel_name)
        admission = await admit(token_hash, timezone.now())
        if admission.grant is None:
            await self.refuse_handshake(admission.reason)
            return
        self.grant = admission.grant
        await self.accept()

    async def refuse_handshake(self, reason: str) -> None:
        logger.warning("control channel: refused %s (%s)", peer(self.scope), reason)
        if self.token_group is not None:
            await self.channel_layer.group_discard(self.token_group, self.channel_name)
            self.token_group = None
        await self.close()  # before accept(): the handshake fails with HTTP 403

    async def disconnect(self, code: int) -> None:
        if self.token_group is not None:
            await leave_group(self.channel_layer, self.token_group, self.channel_name, code)
            self.token_group = None
        if self.proxy_id is None:
            return
        await leave_group(self.channel_layer, PROXIES_GROUP, self.channel_name, code)
        if code == SERVICE_RESTART:
            logger.info("control channel: %s left for a server restart; kept registered",
                        self.proxy_id)
            return
        control_writes().forget(self.channel_name)
        if self.ejections_reported:
            try:
                await ejections.aforget(self.proxy_id)
            except DATA_SOURCE_ERRORS:
                pass  # each ejection still ends at its own time
        if self.state_reported:
            try:
                await instance_state.aforget(self.proxy_id, self.reported_services)
            except DATA_SOURCE_ERRORS:
                pass  # the report expires after 3 heartbeat intervals
        if await release(self.proxy_id, self.channel_name):
            logger.info("control channel: %s disconnected (code %s)", self.proxy_id, code)
            await apublish_endpoints()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = parse_frame(text_data)
            if isinstance(frame, Hello):
                await self.on_hello(frame)
            elif self.proxy_id is None:
                raise FrameError(f"send hello before {type(frame).__name__.lower()}", HELLO_FIRST)
            elif isinstance(frame, Csr):
                await self.on_csr(frame)
            elif isinstance(frame, Heartbeat):
                control_writes().heartbeat(self.channel_name)
                await self.catch_up_config()
                await self.report_state(frame)
                await self.report_ejections(frame)
            elif isinstance(frame, Nack) and frame.kind == EXPORT_TRACES:
                self.export_nacks += 1
                if self.export_nacks <= LOGGED_ERRORS:
                    logger.warning("control channel: %s refused export_traces frame %s: %s",
                                   self.proxy_id, frame.version, frame.reason)
            elif isinstance(frame, Ack | Nack):
                if isinstance(frame, Nack):
                    logger.warning("control channel: %s rejected %s %s: %s",
                                   self.proxy_id, frame.kind, frame.version, frame.reason)
                control_writes().answer(
                    claims.Answer(self.proxy_id, self.channel_name, frame, timezone.now()))
        except FrameError as exc:
            await self.refuse(exc)

    async def refuse(self, exc: FrameError) -> None:
        """Answer a frame (or a part of one) meshui refused with an ``error`` frame."""
        self.errors += 1
        # Logged, but a peer sending garbage in a loop must not flood the log.
        if self.errors <= LOGGED_ERRORS:
            logger.warning("control channel: %s from %s: %s%s", exc.code,
                           self.proxy_id or peer(self.scope), exc,
                           " (further errors on this connection are not logged)"
                           if self.errors == LOGGED_ERRORS else "")
        await self.send_json(exc.as_frame())

    async def on_hello(self, hello: Hello) -> None:
        if self.proxy_id is not None and self.proxy_id != hello.proxy_id:
            raise FrameError("hello: 'proxy_id' must stay the same on one connection; it "
                             "belongs to " + self.proxy_id, BAD_FIELD, "proxy_id")
        assert self.grant is not None  # connect() accepted only with one
        if hello.service != self.grant.service:
            await self.refuse(FrameError(
                f"hello: 'service' is {hello.service!r} but the join token "
                f"{self.grant.prefix}... is for {self.grant.service!r}; give this sidecar a "
                f"token for {hello.service!r}", IDENTITY_MISMATCH, "service"))
            await self.close(code=IDENTITY_CLOSE)
            return
        verdict = await claim(hello, self.channel_name, timezone.now())
        self.proxy_id = hello.proxy_id
        self.tail_keep = hello.tail_keep
        self.service = hello.service
        logger.info("control channel: %s (%s %s) at %s from %s (%s)", hello.proxy_id,
                    hello.service, hello.version, hello.address, peer(self.scope),
                    verdict.reason)
        if verdict.superseded:
            await self.channel_layer.send(verdict.superseded, {"type": "control.superseded"})
        await self.send_json({
            "type": "welcome",
            "proxy_id": hello.proxy_id,
            "heartbeat_interval": settings.MESHUI_HEARTBEAT_INTERVAL,
        })
        await self.send_trust_bundle()
        await self.channel_layer.group_add(PROXIES_GROUP, self.channel_name)
        # The policy in force right after welcome (read after joining the group, so a
        # revision committed meanwhile arrives through it: the newer one is what counts).
        # Never held after a restart: a revision is whole, unlike a half-rebuilt registry.
        config = await read_current_config()
        if config is not None:
            await self.send_config(*config)
        # The new instance's own endpoints message arrives through the group like
        # everybody else's (after the restart hold, settle.py, if one is on).
        await apublish_endpoints()

    async def send_trust_bundle(self) -> None:
        """The roots a sidecar verifies its peers with, right after welcome."""
        try:
            authority = await acurrent_authority()
        except CaProblem as exc:
            logger.error("control channel: no trust bundle for %s: %s", self.proxy_id, exc)
            return
        await self.send_json({"type": "trust_bundle", "version": authority.bundle_version,
                              "roots": authority.roots_pem})

    def csr_allowed(self) -> bool:
        """A token bucket of CSRS_PER_MINUTE, refilled at CSRS_PER_MINUTE a minute or at
        twice the renewal rate of the certificate lifetime (no database read)."""
        now = _clock()
        rate = max(CSRS_PER_MINUTE / 60, 3 / settings.MESHUI_CERT_LIFETIME_S)
        elapsed = 0.0 if self._csr_at is None else now - self._csr_at
        tokens = min(float(CSRS_PER_MINUTE), self._csr_tokens + elapsed * rate)
        self._csr_at = now
        if tokens < 1:
            self._csr_tokens = tokens
            return False
        self._csr_tokens = tokens - 1
        return True

    async def on_csr(self, frame: Csr) -> None:
        """Sign the sidecar a certificate for its token's service, or say why not."""
        if not self.csr_allowed():
            raise FrameError(f"too many CSRs on this connection (at most {CSRS_PER_MINUTE} a "
                             "minute, or twice the certificates' renewal rate); send the next "
                             "one later", RATE_LIMITED, "csr", frame.id)
        assert self.grant is not None and self.proxy_id is not None
        try:
            answer = await issue_certificate(self.grant, self.proxy_id, frame.id, frame.pem,
                                             timezone.now())
        except TokenRefused as exc:
            await self.refuse(FrameError(str(exc), exc.code, "csr", frame.id))
            await self.close(code=TOKEN_CLOSE)
            return
        except CsrRefused as exc:
            raise FrameError(str(exc), exc.code, "csr", frame.id) from None
        except CaProblem as exc:
            logger.error("control channel: cannot sign %s's CSR: %s", self.proxy_id, exc)
            raise FrameError("meshui's CA cannot sign now (its files are unusable: see "
                             "meshui's log); send the CSR again later", CA_UNAVAILABLE,
                             "csr", frame.id) from None
        await self.send_json(answer)

    async def join_token_revoked(self, event: dict[str, Any]) -> None:
        """An admin revoked our join token (identity/api.py): close now, with 4401."""
        if self.grant is None:
            return  # refused at the handshake, or closed already
        self.grant = None
        logger.info("control channel: %s closed: its join token was revoked",
                    self.proxy_id or peer(self.scope))
        await self.send_json(FrameError(
            "the join token of this connection was revoked; create a new one for this "
            "sidecar", TOKEN_REVOKED).as_frame())
        await self.close(code=TOKEN_CLOSE)

    async def control_superseded(self, event: dict[str, Any]) -> None:
        """A newer connection took our instance over: stop sending it anything."""
        logger.info("control channel: %s superseded by a newer connection", self.proxy_id)
        await self.channel_layer.group_discard(PROXIES_GROUP, self.channel_name)
        self.proxy_id = None  # our close must not touch the row (it is not ours anyway)
        await self.close(code=SUPERSEDED)

    async def endpoints_changed(self, event: dict[str, Any]) -> None:
        if event["version"] <= self.endpoints_sent:
            return  # an older snapshot overtaken by a newer one
        self.endpoints_sent = event["version"]
        await self.send(text_data=event["frame"])

    async def report_state(self, heartbeat: Heartbeat) -> None:
        """Keep the heartbeat's state (registry/instance_state.py) if it passed validation; a
        state that did not is answered with an error frame and the last good one stays."""
        if heartbeat.report is None:
            if heartbeat.report_problem is not None:
                await self.refuse(heartbeat.report_problem)
            return
        try:
            self.reported_services = await instance_state.areport(
                self.proxy_id or "", self.service, heartbeat.report, time.time(),
                self.reported_services)
        except DATA_SOURCE_ERRORS:
            return  # Redis away: the next heartbeat reports again
        self.state_reported = True

    async def report_ejections(self, heartbeat: Heartbeat) -> None:
        """Keep what the sidecar ejects now (registry/ejections.py); written when it changes
        or while something is ejected, so a quiet mesh costs no Redis write per heartbeat."""
        if heartbeat.ejected_problem is not None:
            # The heartbeat counted; the report is refused with an error frame, as a bad
            # field elsewhere would be.
            raise FrameError(heartbeat.ejected_problem, BAD_FIELD, "state.ejected")
        if not heartbeat.ejected and not self.ejections_reported:
            return
        try:
            await ejections.areport(self.proxy_id or "", heartbeat.ejected)
        except DATA_SOURCE_ERRORS:
            return  # Redis away: the next heartbeat reports again
        self.ejections_reported = bool(heartbeat.ejected)

    async def catch_up_config(self) -> None:
        """Send the newest revision published if this connection has not sent it (push.py):
        its group message was lost, or is still on its way (then it is skipped on arrival)."""
        try:
            if await alatest_published() <= self.config_sent:
                return
            config = await apublished_config()
        except DATA_SOURCE_ERRORS:
            return  # Redis away: the next heartbeat asks again
        if config is not None:
            await self.send_config(*config)

    async def config_changed(self, event: dict[str, Any]) -> None:
        await self.send_config(event["revision"], event["frame"])

    async def send_config(self, revision: int, frame: str) -> None:
        if revision <= self.config_sent or self.proxy_id is None:
            return  # sent already (or an older revision overtaken by a newer one)
        self.config_sent = revision
        await self.send(text_data=frame)

    async def traces_keep(self, event: dict[str, Any]) -> None:
        """The collector names traces kept (collector/keeprelay.py): ask our sidecar for its
        spans of them with one ``export_traces`` frame (docs/control-channel.md)."""
        if self.proxy_id is None or not self.tail_keep:
            return
        trace_ids = event.get("trace_ids")
        problem = trace_ids_problem(trace_ids)
        if problem is not None:
            logger.warning("control channel: a traces.keep message with bad trace_ids (%s); "
                           "not relayed", problem)
            return
        # A bound of our own, whatever the collectors send: a few frames a second at most.
        now = _clock()
        tokens = min(EXPORT_FRAMES_PER_S, self._export_tokens + (now - self._export_at)
                     * EXPORT_FRAMES_PER_S)
        self._export_at = now
        if tokens < 1:
            self._export_tokens = tokens
            self.export_skipped += 1
            if self.export_skipped == 1:
                logger.warning("control channel: more than %d export_traces frames a second for "
                               "%s; skipping (further skips are not logged)",
                               EXPORT_FRAMES_PER_S, self.proxy_id)
            return
        self._export_tokens = tokens - 1
        self.export_frames += 1
        await self.send_json({"type": EXPORT_TRACES, "id": self.export_frames,
                              "trace_ids": trace_ids})

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload, separators=(",", ":")))
