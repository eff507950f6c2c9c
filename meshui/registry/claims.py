"""Who owns an instance row: the hello that claims it, and the connection that may change it.

Issue 6: a hello claiming a connected instance at another address was accepted, re-pointed
every sidecar at an impostor, and its disconnect then evicted the real instance. Now:

- a proxy id connected on another *live* connection (connected, heard from within 3
  heartbeat intervals) can only be taken over from the same address and service: a sidecar
  whose old socket is half-dead gets back in, an impostor elsewhere is refused;
- the row records the owning connection (its Channels channel name); every later update
  (heartbeat, ack, nack, disconnect) is conditional on it, so a closing old connection never
  evicts or changes a row a newer one took over.

Two hellos for one proxy id at once are decided by the database: the row is read with
``select_for_update`` inside the transaction that writes it (PostgreSQL locks it; SQLite's
IMMEDIATE transactions serialise writers), and a concurrent first insert loses on the
unique proxy id and decides again against the winner's row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db import connection as db_connection

from meshui.registry.frames import PROXY_ID_IN_USE, Ack, FrameError, Hello, Nack
from meshui.registry.models import Instance, Service, stale_after


@dataclass(frozen=True, slots=True)
class Holder:
    """What the decision needs of the row a hello claims."""

    connection: str
    connected: bool
    last_seen: datetime | None
    service: str
    address: str


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str
    superseded: str | None = None  # a live older connection to close, when taken over


def hello_verdict(holder: Holder | None, connection: str, hello: Hello, now: datetime,
                  stale: timedelta) -> Verdict:
    """May this connection's hello take the row? Pure: the row's state and a clock in."""
    if holder is None:
        return Verdict(True, "new instance")
    if holder.connection == connection:
        return Verdict(True, "same connection")
    live = holder.connected and holder.last_seen is not None and holder.last_seen >= now - stale
    if not live:
        return Verdict(True, "the previous connection is closed or silent")
    if holder.address == hello.address and holder.service == hello.service:
        return Verdict(True, "reconnect from the same address", superseded=holder.connection)
    return Verdict(False, (
        f"hello: proxy_id {hello.proxy_id!r} is connected on another live connection with a "
        "different address or service; a reconnect must come from the same address, or "
        "after the old connection closes or misses 3 heartbeats"))


def _holder(row: Instance) -> Holder:
    return Holder(row.connection, row.connected, row.last_seen, row.service.name, row.address)


def _write(hello: Hello, connection: str, now: datetime) -> Verdict:
    with transaction.atomic():
        service, _ = Service.objects.get_or_create(name=hello.service)
        row = (Instance.objects.select_for_update().select_related("service")
               .filter(proxy_id=hello.proxy_id).first())
        verdict = hello_verdict(None if row is None else _holder(row), connection, hello, now,
                                stale_after())
        if not verdict.allowed:
            return verdict
        fields: dict[str, Any] = {
            "service": service, "version": hello.version, "address": hello.address,
            "admin_address": hello.admin, "pid": hello.pid, "connected": True,
            "connected_at": now, "last_seen": now, "connection": connection,
            # A new connection starts from nothing: what it runs is what it ACKs next.
            "endpoints_acked": None, "endpoints_acked_at": None, "endpoints_nacked": None,
            "endpoints_nacked_at": None, "last_nack_reason": "",
            "config_acked": None, "config_acked_at": None, "config_nacked": None,
            "config_nacked_at": None, "config_nack_reason": "",
        }
        if row is None:
            Instance.objects.create(proxy_id=hello.proxy_id, **fields)
        else:
            Instance.objects.filter(pk=row.pk).update(**fields)
        return verdict


def claim(hello: Hello, connection: str, now: datetime) -> Verdict:
    """Register ``hello`` for ``connection``, or raise FrameError (proxy_id_in_use)."""
    try:
        verdict = _write(hello, connection, now)
    except IntegrityError:
        # Another hello inserted the same new proxy id first: decide against its row.
        verdict = _write(hello, connection, now)
    if not verdict.allowed:
        raise FrameError(verdict.reason, PROXY_ID_IN_USE, "proxy_id")
    return verdict


def _mine(proxy_id: str, connection: str) -> Any:
    return Instance.objects.filter(proxy_id=proxy_id, connection=connection)


def release(proxy_id: str, connection: str) -> bool:
    """The connection closed: mark its row disconnected (if it still owns it)."""
    return bool(_mine(proxy_id, connection).filter(connected=True).update(connected=False))


# Heartbeats per UPDATE: SQLite allows 32766 parameters in a statement; stay well below.
TOUCH_CHUNK = 500


def touch(connections: set[str], now: datetime) -> int:
    """Record heartbeats of ``connections`` (channel names); returns how many instances they
    revived (the stale sweep had marked them disconnected). A row is touched only by the
    connection that owns it: one connection owns at most one row."""
    revived = 0
    names = sorted(connections)
    for start in range(0, len(names), TOUCH_CHUNK):
        chunk = Instance.objects.filter(connection__in=names[start:start + TOUCH_CHUNK])
        revived += chunk.filter(connected=False).update(connected=True, last_seen=now)
        chunk.update(last_seen=now)
    return revived


# The columns an ACK and a NACK of each kind write (registry/models.py).
_ACK_FIELDS = {"endpoints": ("endpoints_acked", "endpoints_acked_at"),
               "config": ("config_acked", "config_acked_at")}
_NACK_FIELDS = {"endpoints": ("endpoints_nacked", "endpoints_nacked_at", "last_nack_reason"),
                "config": ("config_nacked", "config_nacked_at", "config_nack_reason")}


@dataclass(frozen=True, slots=True)
class Answer:
    """A sidecar's ACK or NACK, as its connection received it."""

    proxy_id: str
    connection: str
    frame: Ack | Nack
    at: datetime


def _answer_sql(fields: tuple[str, ...]) -> str:
    quote = db_connection.ops.quote_name
    columns = (*fields, "last_seen")  # plain fields: each column is named as its field
    return (f"UPDATE {quote(str(Instance._meta.db_table))} SET "
            + ", ".join(f"{quote(column)} = %s" for column in columns)
            + f" WHERE {quote('proxy_id')} = %s AND {quote('connection')} = %s")


def record_answers(answers: list[Answer]) -> None:
    """Record ACKs (the sidecar runs ``version`` of ``kind`` now) and NACKs (it rejected
    ``version``; what it acknowledged before stays in force), each only on the row its
    connection owns.

    One prepared UPDATE per kind of answer, run with executemany in arrival order: the ORM
    built each row's statement anew, 100 µs apiece, a tenth of meshui's time per revision
    at 1000 sidecars (bench/convergence.py).
    """
    adapt = db_connection.ops.adapt_datetimefield_value
    groups: dict[tuple[type, str], list[tuple[Any, ...]]] = {}
    for answer in answers:
        frame, at = answer.frame, adapt(answer.at)
        values = ((frame.version, at) if isinstance(frame, Ack)
                  else (frame.version, at, frame.reason))
        groups.setdefault((type(frame), frame.kind), []).append(
            (*values, at, answer.proxy_id, answer.connection))
    with db_connection.cursor() as cursor:
        for (kind_of_answer, kind), rows in groups.items():
            fields = (_ACK_FIELDS if kind_of_answer is Ack else _NACK_FIELDS)[kind]
            cursor.executemany(_answer_sql(fields), rows)
