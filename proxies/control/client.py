"""Control channel client: the sidecar's WebSocket to meshui (docs/control-channel.md).

State-of-the-world like xDS: every ``endpoints``/``config`` message carries the whole
state; it is validated, swapped in and ACKed, or NACKed with a reason while the last good
state stays in force. The client reconnects forever with exponential backoff and jitter;
the data path keeps serving the last good endpoints while it is away.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from proxies.control import tls as control_tls
from proxies.identity.tls import IdentityError, MeshIdentity
from proxies.mesh.endpoints import EndpointRegistry, EndpointsError, known_versions
from proxies.mesh.schema import CONTROL_FRAME_MAX_BYTES, NACK_REASON_MAX, shown, trace_ids_problem
from proxies.policy.schema import PolicyError
from proxies.policy.store import PolicyStore
from proxies.telemetry.tailkeep import TailKeeper

log = logging.getLogger("proxies.control")

BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0
WELCOME_TIMEOUT_S = 10.0
INT64_MAX = 2**63 - 1  # an export_traces id: meshui reads it back from a NACK's version
LOGGED_REFUSALS = 10  # refused export_traces frames logged per session; later ones are counted
CSR_TIMEOUT_S = 10.0  # meshui answers a CSR within this, or it is asked again
RENEW_BACKOFF_MIN_S = 1.0  # after a refused or unanswered CSR (doubling, jittered)
RENEW_BACKOFF_MAX_S = 30.0


def backoff_delay(attempt: int, low: float = BACKOFF_MIN_S, high: float = BACKOFF_MAX_S) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, within [low, high]."""
    ceiling = min(high, low * (2**attempt))
    return max(low, ceiling / 2 + random.uniform(0, ceiling / 2))


class ControlClient:
    """Keeps one control connection open, applies what meshui sends, reports our state."""

    def __init__(
        self,
        url: str,
        token: str,
        hello: dict[str, Any],
        registry: EndpointRegistry,
        heartbeat_state: Callable[[], dict[str, Any]],
        *,
        backoff_min: float = BACKOFF_MIN_S,
        backoff_max: float = BACKOFF_MAX_S,
        policy_store: PolicyStore | None = None,
        tail: TailKeeper | None = None,
        identity: MeshIdentity | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.hello = hello
        self.registry = registry
        self.heartbeat_state = heartbeat_state
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.state = "connecting"
        self.last_error: str | None = None
        self.connected_since: float | None = None
        self.heartbeat_interval: float | None = None
        self.config_revision: int | None = None
        self.config_policy: Any = None  # the last accepted document, as sent
        self.config_rejected: dict[str, Any] | None = None
        self.policy_store = policy_store if policy_store is not None else PolicyStore()
        self.endpoints_rejected: dict[str, Any] | None = None
        self.tail = tail  # tail keep: what export_traces frames ask of (None: no ring here)
        self.ca_file = ca_file  # --control-ca: verifies meshui's certificate on wss://
        self._refusals_logged = 0  # export_traces frames refused and logged this session
        # mTLS identity from meshui's CA: the bundle and certificates come on this channel.
        self.identity = identity
        self.csr_sent = 0  # CSR ids of this session (1, 2, ...)
        self.csr_refused: dict[str, Any] | None = None  # the last refusal, for the admin port
        self._csr: tuple[int, Any, asyncio.Future[dict[str, Any]]] | None = None  # id, key, answer
        self._bundle = asyncio.Event()  # a trust bundle arrived on this session
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="control-channel")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def view(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "state": self.state,
            "last_error": self.last_error,
            "proxy_id": self.hello.get("proxy_id"),
            "heartbeat_interval": self.heartbeat_interval,
            "last_rejected_endpoints": self.endpoints_rejected,
            "last_rejected_config": self.config_rejected,
            "last_refused_csr": self.csr_refused,
            "config": {"revision": self.config_revision, "policy": self.config_policy},
        }

    async def run(self) -> None:
        """Connect, serve, reconnect: forever (until cancelled)."""
        attempt = 0
        while True:
            try:
                welcomed = await self._session()
                if welcomed:
                    attempt = 0
                self._set_state("disconnected", self.last_error)
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                status = exc.response.status_code
                # meshui says why in the body when it can (a plaintext refusal, registry/plaintext.py).
                said = exc.response.body.decode("utf-8", "replace").strip()[:300] if exc.response.body else ""
                if status in (401, 403):
                    self._set_state("refused", f"control plane refused us (HTTP {status}): {said}"
                                    if said else f"control plane refused our token (HTTP {status})")
                else:
                    self._set_state("disconnected", f"control plane answered HTTP {status}")
            except ssl.SSLCertVerificationError as exc:  # an OSError too: before that branch
                self._set_state("untrusted", control_tls.verification_failure(exc, self.ca_file))
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                self._set_state("disconnected", f"{type(exc).__name__}: {exc}".rstrip(": "))
            except Exception as exc:  # loop boundary: never let the channel die
                log.exception("control channel failed unexpectedly")
                self._set_state("disconnected", f"{type(exc).__name__}: {exc}")
            delay = backoff_delay(attempt, self.backoff_min, self.backoff_max)
            attempt += 1
            log.info("control channel: reconnecting in %.2f s", delay)
            await asyncio.sleep(delay)

    def _set_state(self, state: str, error: str | None) -> None:
        if state != self.state or error != self.last_error:
            if state in ("refused", "untrusted"):
                log.error("%s; keeping the last good state and retrying", error)
            elif state == "disconnected":
                log.warning(
                    "control channel to %s down (%s); serving with the last good state",
                    self.url,
                    error or "closed",
                )
        self.state = state
        self.last_error = error
        if state != "connected":
            self.connected_since = None

    async def _session(self) -> bool:
        """One connection's life; returns whether meshui welcomed us."""
        self.state = "connecting"
        self._bundle.clear()
        self.csr_sent = 0
        async with connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self.token}"},
            proxy=None,  # never route the control channel through HTTP_PROXY (our own sidecar)
            ssl=control_tls.client_context(self.url, self.ca_file),
            open_timeout=WELCOME_TIMEOUT_S,
            compression=None,
            # The frame limit meshui keeps its endpoints messages under (proxies.mesh.schema).
            max_size=CONTROL_FRAME_MAX_BYTES,
        ) as ws:
            await ws.send(orjson.dumps({"type": "hello", **self.hello}).decode())
            welcome = await asyncio.wait_for(self._expect_welcome(ws), WELCOME_TIMEOUT_S)
            interval = welcome.get("heartbeat_interval")
            if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
                interval = 10.0
            self.heartbeat_interval = float(interval)
            self.state = "connected"
            self.last_error = None
            self._refusals_logged = 0
            self.connected_since = time.monotonic()
            log.info(
                "control channel connected to %s as %s (heartbeat every %s s)",
                self.url,
                self.hello.get("proxy_id"),
                interval,
            )
            loop = asyncio.get_running_loop()
            tasks = [loop.create_task(self._heartbeat(ws, interval))]
            if self.identity is not None:
                tasks.append(loop.create_task(self._renew(ws, self.identity)))
            try:
                async for frame in ws:
                    await self._handle(ws, frame)
            finally:
                for task in tasks:
                    task.cancel()
                self._csr = None
            self.last_error = "connection closed by the control plane"
            return True

    async def _expect_welcome(self, ws: Any) -> dict[str, Any]:
        async for frame in ws:
            message = _decode(frame)
            if message is None:
                continue
            if message.get("type") == "welcome":
                return message
            if message.get("type") == "error":
                log.warning("control plane error before welcome: %s", message.get("reason"))
                continue
            # Anything else before the welcome is still state; apply it.
            await self._handle(ws, frame)
        raise websockets.ConnectionClosed(None, None)

    async def _heartbeat(self, ws: Any, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            state = self.heartbeat_state()
            state["config_revision"] = self.config_revision
            await ws.send(orjson.dumps({"type": "heartbeat", "state": state}).decode())

    async def _handle(self, ws: Any, frame: str | bytes) -> None:
        message = _decode(frame)
        if message is None:
            log.warning("control plane sent a frame that is not a JSON object; ignored")
            return
        kind = message.get("type")
        if kind == "endpoints":
            version = message.get("version")
            try:
                snapshot = self.registry.apply(version, message.get("services"))
            except EndpointsError as exc:
                reason = str(exc)
                self.endpoints_rejected = {"version": version, "reason": reason}
                log.warning("rejected endpoints version %r: %s (previous set stays)", version, reason)
                await ws.send(_reply("nack", "endpoints", version, reason))
                return
            log.info(
                "endpoints version %d in force: %d services, %d instances",
                snapshot.version,
                len(snapshot.services),
                sum(len(e.endpoints) for e in snapshot.services.values()),
            )
            await ws.send(_reply("ack", "endpoints", version))
        elif kind == "config":
            await self._apply_config(ws, message)
        elif kind == "export_traces":
            await self._export_traces(ws, message)
        elif kind == "trust_bundle":
            self._trust_bundle(message)
        elif kind == "certificate" or (kind == "error" and message.get("field") == "csr"):
            self._csr_answered(message)
        elif kind == "error":
            log.warning("control plane could not understand a frame: %s", message.get("reason"))
        elif kind == "welcome":
            pass
        else:
            log.warning("control plane sent an unknown message type %r; ignored", kind)

    # identity ---------------------------------------------------------------------------

    def _trust_bundle(self, message: dict[str, Any]) -> None:
        identity = self.identity
        if identity is None:
            return
        roots, version = message.get("roots"), message.get("version")
        try:
            if not isinstance(roots, str):
                raise IdentityError("trust bundle: roots must be PEM text")
            identity.set_bundle(roots, version if isinstance(version, str) else None)
        except IdentityError as exc:
            log.error("%s; the previous trust bundle stays", exc)
            return
        self._bundle.set()

    def _csr_answered(self, message: dict[str, Any]) -> None:
        pending = self._csr
        if pending is None or message.get("id") != pending[0] or pending[2].done():
            log.warning("control plane answered CSR %r, which is not the one outstanding",
                        message.get("id"))
            return
        pending[2].set_result(message)

    async def _renew(self, ws: Any, identity: MeshIdentity) -> None:
        """Keep a certificate: ask for one when there is none or it is due (at 2/3 of its
        life), with a new key each time; on a refusal, ask again with backoff."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(self._bundle.wait(), WELCOME_TIMEOUT_S)
        except TimeoutError:
            log.error("the control plane sent no trust bundle within %g s of welcome; no "
                      "certificate is asked for on this connection (mTLS stays off)", WELCOME_TIMEOUT_S)
            return
        failures = 0
        while True:
            await asyncio.sleep(identity.renewal_due())
            key, csr = identity.new_request()
            self.csr_sent += 1
            answer: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._csr = (self.csr_sent, key, answer)
            await ws.send(orjson.dumps({"type": "csr", "id": self.csr_sent, "csr": csr}).decode())
            problem = None
            try:
                message = await asyncio.wait_for(answer, CSR_TIMEOUT_S)
            except TimeoutError:
                problem = f"no answer to CSR {self.csr_sent} within {CSR_TIMEOUT_S:g} s"
            else:
                if message.get("type") == "error":
                    problem = f"{message.get('code')}: {message.get('reason')}"
                else:
                    refresh_at = message.get("refresh_at")
                    try:
                        identity.install(key, message.get("chain"),  # type: ignore[arg-type]
                                         refresh_at if isinstance(refresh_at, (int, float)) else None)
                    except (IdentityError, AttributeError) as exc:
                        problem = str(exc)
            finally:
                self._csr = None
            if problem is None:
                failures = 0
                self.csr_refused = None
                continue
            failures += 1
            self.csr_refused = {"id": self.csr_sent, "reason": problem}
            log.error("certificate not renewed: %s (the one in force stays until it expires)", problem)
            await asyncio.sleep(backoff_delay(failures, RENEW_BACKOFF_MIN_S, RENEW_BACKOFF_MAX_S))

    async def _apply_config(self, ws: Any, message: dict[str, Any]) -> None:
        """Validate and swap in a policy revision; NACK with the field at fault otherwise."""
        revision = message.get("revision")
        document = message.get("policy")
        reason = None
        if not isinstance(revision, int) or isinstance(revision, bool):
            reason = "revision: must be an integer"
        elif not isinstance(document, dict):
            reason = "policy: must be an object"
        else:
            try:
                policy = self.policy_store.apply(
                    {**document, "revision": revision}, known_versions(self.registry.snapshot)
                )
            except PolicyError as exc:
                reason = str(exc)
            except Exception as exc:  # a message boundary: a parser bug must not kill the channel
                log.exception("config revision %r: the policy parser failed", revision)
                reason = f"policy: could not be validated ({type(exc).__name__})"
        if reason is not None:
            self.config_rejected = {"revision": revision, "reason": reason}
            log.warning("rejected config revision %r: %s (previous policy stays)", revision, reason)
            await ws.send(_reply("nack", "config", revision, reason))
            return
        self.config_revision = revision
        self.config_policy = document
        log.info("policy revision %d in force (%d services)", revision, len(policy.services))
        await ws.send(_reply("ack", "config", revision))

    async def _export_traces(self, ws: Any, message: dict[str, Any]) -> None:
        """Export what the ring holds of the traces named (tail keep); NACK a bad frame.

        No ACK: the frame is advice, sent again by nobody. A bad one is refused whole with a
        NACK naming the field (``version`` is the frame's ``id``, or 0 without a usable one).
        """
        tail = self.tail
        if tail is None:
            log.debug("export_traces frame ignored: tail keep is off on this sidecar")
            return
        frame_id = message.get("id")
        trace_ids = message.get("trace_ids")
        version: Any = 0
        reason = None
        if not isinstance(frame_id, int) or isinstance(frame_id, bool) or not 0 <= frame_id <= INT64_MAX:
            reason = f"id: must be an integer 0..{INT64_MAX}, got {shown(frame_id)}"
        else:
            version = frame_id
            problem = trace_ids_problem(trace_ids)
            if problem is not None:
                reason = f"trace_ids: {problem}"
        if reason is not None:
            tail.frames["rejected"] += 1
            self._refusals_logged += 1
            if self._refusals_logged <= LOGGED_REFUSALS:
                log.warning("refused export_traces frame %s: %s%s", version, reason,
                            " (further refusals this session are not logged)"
                            if self._refusals_logged == LOGGED_REFUSALS else "")
            await ws.send(_reply("nack", "export_traces", version, reason))
            return
        tail.frames["accepted"] += 1
        exported, refused = tail.export_traces([bytes.fromhex(t) for t in trace_ids])  # type: ignore[union-attr]
        if exported or refused:
            log.debug("export_traces %s: %d traces exported, %d refused (keep rate spent)",
                      version, exported, refused)


def _decode(frame: str | bytes) -> dict[str, Any] | None:
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


def _reply(kind: str, what: str, version: Any, reason: str | None = None) -> str:
    body: dict[str, Any] = {"type": kind, "kind": what, "version": version}
    if reason is not None:
        # meshui keeps at most NACK_REASON_MAX characters of a reason: cut it here, so a
        # huge rejected value never makes the NACK itself too big to be heard.
        if len(reason) > NACK_REASON_MAX:
            reason = reason[: NACK_REASON_MAX - 3] + "..."
        body["reason"] = reason
    return orjson.dumps(body).decode()
