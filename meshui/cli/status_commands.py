"""The live-state commands: proxy-status (sync per sidecar) and stat (golden metrics)."""

from __future__ import annotations

import argparse
from typing import Any

from meshui.cli import stat
from meshui.cli.context import Context
from meshui.cli.errors import Exit, refused
from meshui.cli.terminal import as_json, clean, table

PROXY_HEADERS = ["NAME", "SERVICE", "VERSION", "CONFIG", "ENDPOINTS"]


def _kind(sync: dict[str, Any] | None) -> str:
    """``SYNCED (4)``: the state and the revision (or endpoints version) acknowledged."""
    sync = sync or {}
    acked = sync.get("revision_acked")
    return f"{sync.get('state', '?')} ({acked if acked is not None else '-'})"


def _summary(summary: dict[str, Any]) -> str:
    revision = summary.get("revision") or 0
    if not revision:
        return f"no policy revision yet; {summary.get('total', 0)} connected sidecars"
    line = (f"revision {revision}: {summary.get('synced', 0)}/{summary.get('total', 0)} "
            f"connected sidecars SYNCED")
    others = [f"{summary[key]} {key.upper()}" for key in ("pending", "stale", "nacked")
              if summary.get(key)]
    return line + (", " + ", ".join(others) if others else "")


def proxy_status(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.client.get("/proxies")
    if ctx.json:
        ctx.out.write(as_json(answer))
        return Exit.OK
    proxies = sorted(answer.get("proxies") or [],
                     key=lambda p: (str(p.get("service", "")), str(p.get("proxy_id", ""))))
    if not proxies:
        ctx.out.write("no sidecar has connected yet\n")
        return Exit.OK
    rows = [[f"{p.get('proxy_id', '?')}{'' if p.get('connected') else ' (disconnected)'}",
             p.get("service", "?"), p.get("version") or "-", _kind(p.get("config")),
             _kind(p.get("endpoints"))] for p in proxies]
    ctx.out.write(table(PROXY_HEADERS, rows))
    for proxy in proxies:
        for kind, label, unit in (("config", "config", "revision"),
                                  ("endpoints", "endpoints", "version")):
            sync = proxy.get(kind) or {}
            if sync.get("state") == "NACKED":
                ctx.out.write(clean(f"{proxy.get('proxy_id')}: {label} {unit} "
                                    f"{sync.get('revision_sent')} NACKED: "
                                    f"{sync.get('nack_reason') or 'no reason given'}") + "\n")
    ctx.out.write(_summary(answer.get("summary") or {}) + "\n")
    return Exit.OK


def _hidden(graph: dict[str, Any]) -> str | None:
    hidden = (graph.get("hidden") or {}).get("nodes") or 0
    return f"{hidden} more services hidden (the server shows the busiest)" if hidden else None


def stat_command(ctx: Context, args: argparse.Namespace) -> int:
    graph = ctx.client.get("/graph", window=args.window)
    window = graph.get("window", args.window)
    if args.service is None:
        if ctx.json:
            ctx.out.write(as_json(graph))
            return Exit.OK
        rows = stat.service_rows(graph.get("nodes") or [])
        if not rows:
            ctx.out.write(f"no traffic in the last {window} s\n")
        else:
            ctx.out.write(table(["NAME", *stat.STATS], rows))
        note = _hidden(graph)
        if note:
            ctx.out.write(note + "\n")
        return Exit.OK
    cut = stat.neighbourhood(graph, args.service)
    if cut is None:
        names = sorted(str(n.get("service", "")) for n in graph.get("nodes") or [])
        known = (f"; services with traffic: {', '.join(names[:10])}"
                 + (" ..." if len(names) > 10 else "")) if names else ""
        raise refused(clean(f"no traffic to or from {args.service} in the last {window} s"
                            f"{known}"))
    if ctx.json:
        ctx.out.write(as_json(cut))
        return Exit.OK
    node_rows = stat.service_rows(cut["nodes"])
    ctx.out.write(table(["NAME", *stat.STATS], node_rows or [[args.service, *stat.stats({})]]))
    for title, peer, end in (("INBOUND", "source", "target"), ("OUTBOUND", "target", "source")):
        edges = [e for e in cut["edges"] if e.get(end) == args.service]
        ctx.out.write(f"\n{title}\n")
        if edges:
            headers, rows = stat.edge_rows(edges, peer)
            ctx.out.write(table(headers, rows))
        else:
            ctx.out.write(f"no {title.lower()} calls in the last {window} s\n")
    return Exit.OK
