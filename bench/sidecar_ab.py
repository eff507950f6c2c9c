"""Benchmark: this tree's sidecar against another commit's, interleaved in the same run.

    .venv/bin/python bench/sidecar_ab.py --base <commit> [--rounds 5] [--seconds 4]

A change to the data path records its before/after here. The base commit is checked out
into a temporary git worktree; both sidecars run side by side (same upstream, same OTLP
sink, both pinned to the proxy core), once as a bare hop (static endpoints, telemetry on,
as bench/sidecar_hop.py), once with the full policy (bench/sidecar_policy.py's) and once as a
mesh hop over mutual TLS (``mtls``: sidecar A -> sidecar B -> upstream, both with certificates
of one CA, as bench/sidecar_mtls.py; CPU summed over the two).
``interleaved()`` measures every target in every round, the order flipped, so drift hits both
alike. Prints per-round figures and the medians, and writes ``## Sidecar A/B`` in
bench/RESULTS.md with the run-to-run noise (the spread of the base's own rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from results import paired_ratios, spread  # type: ignore[import-not-found]
from sidecar_hop import (  # type: ignore[import-not-found]
    LOAD_CPU,
    OTLP_SINK,
    PROXY_CPU,
    PY,
    ROOT,
    UPSTREAM,
    free_port,
    interleaved,
    report,
    spawn,
    stop_all,
    wait_port,
)
from sidecar_mtls import make_identities, ours  # type: ignore[import-not-found]
from sidecar_policy import POLICY  # type: ignore[import-not-found]


def sidecar(tree: Path, tmp: Path, name: str, endpoints: Path, sink: int, policy: Path | None):
    inbound, outbound, admin = free_port(), free_port(), free_port()
    proc = spawn(
        PROXY_CPU, PY, "-m", "proxies", "--service", "bench", "--version", "v1",
        "--app", "127.0.0.1:1", "--inbound", f"127.0.0.1:{inbound}",
        "--outbound", f"127.0.0.1:{outbound}", "--admin", f"127.0.0.1:{admin}",
        "--endpoints", str(endpoints), "--otlp", f"http://127.0.0.1:{sink}", "--trace-sample", "0.01",
        *(["--policy", str(policy)] if policy else []), "--log-level", "WARNING",
        log=tmp / f"{name}.log", cwd=tree,
    )  # fmt: skip
    return outbound, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="commit to compare against (e.g. main~3)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--scenario", choices=("hop", "policy", "mtls"), action="append",
                        help="only this scenario (repeatable; default both)")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()
    scenarios = args.scenario or ["hop", "policy", "mtls"]
    base_sha = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    head_sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="sidecar-ab-"))
    base_tree = tmp / "base"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base_tree), base_sha],
                   cwd=ROOT, check=True)
    v1, v2, sink = free_port(), free_port(), free_port()
    endpoints = tmp / "endpoints.json"
    endpoints.write_text(json.dumps({"upstream": [
        {"instance": "u-v1", "version": "v1", "address": f"127.0.0.1:{v1}"},
        {"instance": "u-v2", "version": "v2", "address": f"127.0.0.1:{v2}"},
    ]}))  # fmt: skip
    hop_endpoints = tmp / "hop-endpoints.json"
    hop_endpoints.write_text(json.dumps({"upstream": [
        {"instance": "u-v1", "version": "v1", "address": f"127.0.0.1:{v1}"}]}))
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    ids = make_identities(tmp, ["client", "upstream"])
    procs: list[subprocess.Popen] = []
    try:
        procs += [spawn(LOAD_CPU, PY, "-c", UPSTREAM, str(port)) for port in (v1, v2)]
        procs.append(spawn(LOAD_CPU, PY, "-c", OTLP_SINK, str(sink)))
        targets = {}
        waits: list[int] = []  # B's ports of the mtls pairs
        for label, tree in (("base", base_tree), ("head", ROOT)):
            for scenario, eps, pol in (("hop", hop_endpoints, None), ("policy", endpoints, policy)):
                if scenario not in scenarios:
                    continue
                name = f"{scenario}@{label}"
                port, proc = sidecar(tree, tmp, name, eps, sink, pol)
                procs.append(proc)
                targets[name] = (port, [proc])
            if "mtls" in scenarios:  # sidecar_mtls.py's pair, A -> B, both of this tree
                pair = ours(tmp, f"mtls-{label}", {"v1": v1}, ids, sink, None, tree=tree)
                procs += pair.proxies
                waits += pair.servers
                targets[f"mtls@{label}"] = pair.target()
        for port in (v1, v2, sink, *waits, *(p for p, _ in targets.values())):
            wait_port(port)
        results = interleaved(targets, args.rounds, args.seconds)
    finally:
        stop_all(procs)
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=False)

    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    lines = [
        "## Sidecar A/B",
        "",
        f"`bench/sidecar_ab.py --base {base_sha}` at {head_sha}, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} cores; wrk and upstreams on CPU {LOAD_CPU}, sidecars on CPU {PROXY_CPU}; "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s, medians. `hop`: static endpoints, "
        "telemetry on (bench/sidecar_hop.py's setup); `policy`: bench/sidecar_policy.py's full policy; "
        "`mtls`: sidecar A -> sidecar B over mutual TLS (bench/sidecar_mtls.py's certificates), "
        "CPU/req of both together.",
        "",
        "| scenario | CPU/req base (µs) | CPU/req head (µs) | head/base, median of rounds | "
        "per-round ratios (min..max) | base's own spread | p50 c=1 base / head (µs) | "
        "rps c=50 base / head |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        base, head = med[f"{scenario}@base"], med[f"{scenario}@head"]
        ratios = paired_ratios(results[f"{scenario}@head"]["cpu"], results[f"{scenario}@base"]["cpu"])
        noise = spread(results[f"{scenario}@base"]["cpu"])
        lines.append(
            f"| {scenario} | {base['cpu']:.1f} | {head['cpu']:.1f} | {statistics.median(ratios):.3f}x | "
            f"{min(ratios):.2f}..{max(ratios):.2f} | ±{noise * 100:.1f}% | "
            f"{base['p50']:.0f} / {head['p50']:.0f} | {base['rps']:.0f} / {head['rps']:.0f} |"
        )
    lines.append("")
    report(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
