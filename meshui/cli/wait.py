"""``--wait``: poll ``GET /api/v1/proxies`` until every connected sidecar runs a revision.

``progress`` is the pure decision (the API's answer and a revision in, where the rollout
stands out); ``wait_for`` polls it with an injected clock and sleep. A sidecar counts as
having applied revision N once it acknowledged N or a later one (a later write supersedes
N on every sidecar); a NACK is final for that revision (xDS: the sidecar keeps its last good
config and will not take the same revision again), so one NACK ends the wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from meshui.cli.client import ApiClient
from meshui.cli.errors import refused, unreachable
from meshui.cli.terminal import clean

POLL_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Laggard:
    """A connected sidecar that has not applied the revision, and why."""

    name: str
    service: str
    version: str
    state: str
    acked: int | None
    reason: str | None

    def line(self, revision: int) -> str:
        who = clean(f"{self.name} ({self.service} {self.version or '-'})")
        if self.state == "NACKED":
            return f"  {who}: NACKED revision {revision}: {clean(self.reason or 'no reason given')}"
        acked = f"runs revision {self.acked}" if self.acked is not None else "runs no revision yet"
        return f"  {who}: {clean(self.state)}, {acked}"


@dataclass(frozen=True, slots=True)
class Progress:
    revision: int
    applied: int
    total: int
    nacked: tuple[Laggard, ...]
    waiting: tuple[Laggard, ...]

    @property
    def done(self) -> bool:
        return bool(self.nacked) or self.applied == self.total

    def line(self) -> str:
        if not self.total:
            return "no connected sidecars to wait for"
        return f"applied on {self.applied}/{self.total} sidecars"


def progress(answer: dict[str, Any], revision: int) -> Progress:
    """Where revision ``revision`` stands on the connected sidecars of ``answer``."""
    applied = 0
    nacked: list[Laggard] = []
    waiting: list[Laggard] = []
    for proxy in answer.get("proxies", []):
        if not proxy.get("connected"):
            continue  # a disconnected sidecar gets the latest revision when it comes back
        config = proxy.get("config") or {}
        acked = config.get("revision_acked")
        if isinstance(acked, int) and acked >= revision:
            applied += 1
            continue
        laggard = Laggard(str(proxy.get("proxy_id", "?")), str(proxy.get("service", "?")),
                          str(proxy.get("version", "")), str(config.get("state", "?")),
                          acked if isinstance(acked, int) else None, config.get("nack_reason"))
        (nacked if laggard.state == "NACKED" else waiting).append(laggard)
    total = applied + len(nacked) + len(waiting)
    return Progress(revision, applied, total, tuple(nacked), tuple(waiting))


def wait_for(client: ApiClient, revision: int, timeout: float, out: TextIO, *,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], object] = time.sleep,
             interval: float = POLL_INTERVAL) -> Progress:
    """Poll until revision ``revision`` is applied everywhere; raise on a NACK or timeout."""
    deadline = clock() + timeout
    shown = ""
    while True:
        state = progress(client.get("/proxies"), revision)
        if state.line() != shown:
            shown = state.line()
            print(shown, file=out, flush=True)
        if state.done or clock() >= deadline:
            break
        sleep(min(interval, max(0.0, deadline - clock())))
    if state.nacked:
        for laggard in state.nacked:
            print(laggard.line(revision), file=out)
        count = len(state.nacked)
        raise refused(f"{count} sidecar{'s' if count > 1 else ''} rejected revision {revision} "
                      f"and keep{'' if count > 1 else 's'} the last good one: fix the policy "
                      f"and apply again")
    if state.applied < state.total:
        for laggard in state.waiting:
            print(laggard.line(revision), file=out)
        missing = state.total - state.applied
        raise unreachable(f"timed out after {timeout:g} s: {missing} of {state.total} "
                          f"sidecars have not applied revision {revision} (meshctl "
                          f"proxy-status shows them; --timeout waits longer)")
    return state
