"""The control-channel frames a sidecar sends, parsed and validated (docs/control-channel.md).

Pure functions: a frame's text in, a frozen dataclass out, or ``FrameError`` naming the
field at fault (it goes back to the sidecar as ``{type: error, code, field, reason}``).
Every name and address of a hello is checked with the sidecar's own rules
(proxies/mesh/schema.py), so nothing meshui registers can make a sidecar NACK the
endpoints message built from it (issue 6).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from meshui.registry.heartbeats import ReportProblem, StateReport, parse_state
from proxies.mesh.schema import (
    HEARTBEAT_EJECTIONS_MAX,
    NACK_REASON_MAX,
    address_problem,
    proxy_id_problem,
    service_name_problem,
    shown,
    version_problem,
)

# A sidecar's frames are small (a hello is ~250 bytes, a heartbeat ~150); the bounds stop a
# hostile one from making meshui parse, store or echo megabytes.
MAX_FRAME_BYTES = 64 * 1024
MAX_FRAME_DEPTH = 8
SIDECAR_VERSION_MAX = 64
INT64_MAX = 2**63 - 1  # versions are stored in a BigIntegerField
PID_MAX = 2**31 - 1  # an IntegerField

# Error codes of the `error` frame (a public contract: docs/control-channel.md).
BAD_FRAME = "bad_frame"  # not a JSON object with a string type, or a binary frame
FRAME_TOO_LARGE = "frame_too_large"
FRAME_TOO_DEEP = "frame_too_deep"
UNKNOWN_TYPE = "unknown_type"
BAD_FIELD = "bad_field"
HELLO_FIRST = "hello_first"
PROXY_ID_IN_USE = "proxy_id_in_use"
# Identity (issue 11): the hello's service or a CSR's identity is not the join token's; a
# CSR meshui cannot sign; the token was revoked or expired since the handshake (the
# connection is then closed, TOKEN_CLOSE); more CSRs than CSRS_PER_MINUTE.
IDENTITY_MISMATCH = "identity_mismatch"
BAD_CSR = "bad_csr"
TOKEN_REVOKED = "token_revoked"
TOKEN_EXPIRED = "token_expired"
RATE_LIMITED = "rate_limited"
CA_UNAVAILABLE = "ca_unavailable"  # meshui's CA files cannot be used now: retry later

CSR = "csr"
CSR_ID_MAX = INT64_MAX


class FrameError(ValueError):
    """A frame meshui refuses; ``code`` is stable, ``field`` names the key at fault."""

    def __init__(self, reason: str, code: str = BAD_FRAME, field: str | None = None,
                 frame_id: int | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.field = field
        self.frame_id = frame_id  # the refused frame's own id (a csr's)

    def as_frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "error", "code": self.code, "reason": str(self)}
        if self.field is not None:
            frame["field"] = self.field
        if self.frame_id is not None:
            frame["id"] = self.frame_id
        return frame


@dataclass(frozen=True, slots=True)
class Hello:
    proxy_id: str
    service: str
    version: str
    address: str
    admin: str
    pid: int | None
    sidecar_version: str
    tail_keep: bool = False  # it holds a ring of recent spans: send it export_traces frames


@dataclass(frozen=True, slots=True)
class Csr:
    """A certificate signing request (meshui/identity/csr.py checks the PEM itself)."""

    id: int
    pem: str


@dataclass(frozen=True, slots=True)
class Ack:
    kind: str
    version: int


@dataclass(frozen=True, slots=True)
class Nack:
    kind: str
    version: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ejected:
    """An instance a sidecar's outlier detection keeps out, until ``until`` (epoch seconds)."""

    service: str
    instance: str
    until: float


@dataclass(frozen=True, slots=True)
class Heartbeat:
    state: dict[str, Any]
    ejected: tuple[Ejected, ...] = ()
    # Why ``state.ejected`` was not understood (None: it was). The heartbeat still counts:
    # a sidecar must not be evicted for a report meshui cannot read.
    ejected_problem: str | None = None
    # The rest of the state, validated (heartbeats.py); None with ``report_problem`` when it
    # breaks a rule: nothing of it is kept, the last good report stays.
    report: StateReport | None = None
    report_problem: FrameError | None = None


Frame = Hello | Ack | Nack | Heartbeat | Csr
KINDS = ("endpoints", "config")
# A sidecar may also NACK an export_traces frame (its `version` is the frame's `id`); it
# never ACKs one, and no sync state is kept of them.
EXPORT_TRACES = "export_traces"
NACK_KINDS = (*KINDS, EXPORT_TRACES)


def _bad(frame: dict[str, Any], name: str, problem: str) -> FrameError:
    return FrameError(f"{frame['type']}: '{name}' {problem}", BAD_FIELD, name)


def _checked(frame: dict[str, Any], name: str, check: Any, *, required: bool = True) -> str:
    """A string field passing one of proxies.mesh.schema's checks ('' when optional and absent)."""
    value = frame.get(name)
    if value is None and not required:
        return ""
    if not required and value == "":
        return ""
    problem = check(value)
    if problem is not None:
        raise _bad(frame, name, problem)
    return value  # type: ignore[return-value]


def _text(frame: dict[str, Any], name: str, limit: int) -> str:
    value = frame.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise _bad(frame, name, f"must be printable text of at most {limit} characters, "
                                f"got {shown(value)}")
    return value


def _int(frame: dict[str, Any], name: str, low: int, high: int, *, required: bool = True
         ) -> int | None:
    value = frame.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(frame, name, f"must be an integer in {low}..{high}, got {shown(value)}")
    return value


def _kind(frame: dict[str, Any], kinds: tuple[str, ...] = KINDS) -> str:
    kind = frame.get("kind")
    if kind not in kinds:
        raise _bad(frame, "kind", f"must be one of {', '.join(kinds)}, got {shown(kind)}")
    return kind


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether JSON ``value`` nests containers deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def decode(text: str | None) -> dict[str, Any]:
    """The frame's JSON object, bounded in size and depth."""
    if text is None:
        raise FrameError("binary frames are not supported; send JSON text frames")
    if len(text) > MAX_FRAME_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        raise FrameError(f"frame larger than {MAX_FRAME_BYTES} bytes", FRAME_TOO_LARGE)
    try:
        frame = json.loads(text)
    except RecursionError:
        raise FrameError(f"frame nested deeper than {MAX_FRAME_DEPTH} levels",
                         FRAME_TOO_DEEP) from None
    except ValueError as exc:
        raise FrameError(f"invalid JSON: {exc}") from None
    if depth_exceeds(frame, MAX_FRAME_DEPTH):
        raise FrameError(f"frame nested deeper than {MAX_FRAME_DEPTH} levels", FRAME_TOO_DEEP)
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("a frame must be a JSON object with a string 'type'")
    return frame


def parse_hello(frame: dict[str, Any]) -> Hello:
    return Hello(
        proxy_id=_checked(frame, "proxy_id", proxy_id_problem),
        service=_checked(frame, "service", service_name_problem),
        version=_checked(frame, "version", version_problem, required=False),
        address=_checked(frame, "address", address_problem),
        admin=_checked(frame, "admin", address_problem, required=False),
        pid=_int(frame, "pid", 1, PID_MAX, required=False),
        sidecar_version=_text(frame, "sidecar_version", SIDECAR_VERSION_MAX),
        tail_keep=_bool(frame, "tail_keep"),
    )


def _bool(frame: dict[str, Any], name: str) -> bool:
    value = frame.get(name, False)
    if not isinstance(value, bool):
        raise _bad(frame, name, f"must be true or false, got {shown(value)}")
    return value


def _ejected(report: Any) -> tuple[Ejected, ...]:
    """A heartbeat's ``state.ejected``: a list of ``{service, instance, until}``."""
    if not isinstance(report, list):
        raise ValueError(f"must be a list, got {shown(report)}")
    if len(report) > HEARTBEAT_EJECTIONS_MAX:
        raise ValueError(f"has {len(report)} entries; at most {HEARTBEAT_EJECTIONS_MAX}")
    ejected = []
    for n, entry in enumerate(report):
        if not isinstance(entry, dict):
            raise ValueError(f"[{n}] must be an object, got {shown(entry)}")
        service, instance, until = entry.get("service"), entry.get("instance"), entry.get("until")
        for name, problem in (("service", service_name_problem(service)),
                              ("instance", proxy_id_problem(instance))):
            if problem is not None:
                raise ValueError(f"[{n}].{name} {problem}")
        if (isinstance(until, bool) or not isinstance(until, int | float)
                or not 0 < until < 1e11):
            raise ValueError(f"[{n}].until must be epoch seconds, got {shown(until)}")
        ejected.append(Ejected(str(service), str(instance), float(until)))
    return tuple(ejected)


def parse_frame(text: str | None) -> Frame:
    """Decode one text frame into its dataclass, or raise FrameError naming what is wrong."""
    frame = decode(text)
    kind = frame["type"]
    if kind == "hello":
        return parse_hello(frame)
    if kind == "ack":
        return Ack(kind=_kind(frame), version=_int(frame, "version", 0, INT64_MAX))  # type: ignore[arg-type]
    if kind == "nack":
        reason = frame.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise _bad(frame, "reason", f"must be a string, got {shown(reason)}")
        return Nack(
            kind=_kind(frame, NACK_KINDS),
            version=_int(frame, "version", 0, INT64_MAX),  # type: ignore[arg-type]
            reason=(reason or "(no reason given)")[:NACK_REASON_MAX],
        )
    if kind == "heartbeat":
        state = frame.get("state", {})
        if not isinstance(state, dict):
            raise _bad(frame, "state", "must be an object")
        report, report_problem = None, None
        try:
            report = parse_state(state)
        except ReportProblem as exc:
            report_problem = FrameError(f"heartbeat: '{exc.field}' {exc}", BAD_FIELD, exc.field)
        try:
            ejected, ejected_problem = _ejected(state.get("ejected", [])), None
        except ValueError as exc:
            ejected, ejected_problem = (), f"heartbeat: 'state.ejected' {exc}"
        return Heartbeat(state=state, ejected=ejected, ejected_problem=ejected_problem,
                         report=report, report_problem=report_problem)
    if kind == CSR:
        return parse_csr(frame)
    raise FrameError(f"unknown frame type {shown(kind)}", UNKNOWN_TYPE, "type")


def parse_csr(frame: dict[str, Any]) -> Csr:
    frame_id = _int(frame, "id", 1, CSR_ID_MAX)
    assert frame_id is not None
    pem = frame.get("csr")
    if not isinstance(pem, str):
        raise FrameError(f"csr: 'csr' must be the PEM text of a certificate request, got "
                         f"{shown(pem)}", BAD_CSR, "csr", frame_id)
    return Csr(frame_id, pem)
