"""Benchmark: the sidecar with all of its traffic policy on, against Envoy configured alike.

    .venv/bin/python bench/sidecar_policy.py [--rounds 3] [--seconds 4]

Two upstream versions (v1, v2). Our sidecar routes a 90/10 split between them with
peak-EWMA balancing, retries, the circuit breaker and outlier detection on, telemetry
exporting to a local OTLP sink; a second sidecar runs the same policy with telemetry
export and spans off (in-process aggregation stays: it feeds the admin port). Envoy
(``--concurrency 1``) gets the equivalent: weighted clusters 90/10, least-request
balancing (its nearest to peak-EWMA), the same retry policy, default circuit breakers and
outlier detection. Same machine, same run, rounds interleaved; wrk and upstreams on one
core, proxies on the other. Writes ``## Sidecar with full policy`` in bench/RESULTS.md.

Goals (issue 3): added p50 <= 1.5x Envoy, CPU/request <= 2x Envoy, saturation rps >= 0.8x
Envoy, CPU/request with telemetry on <= 1.3x with it off.
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

from sidecar_hop import (  # type: ignore[import-not-found]
    LOAD_CPU,
    OTLP_SINK,
    PROXY_CPU,
    PY,
    UPSTREAM,
    envoy_config,
    free_port,
    measure,
    report,
    rss_mb,
    spawn,
    start_envoy,
    stop_all,
    wait_port,
)

POLICY = """
revision: 1
services:
  upstream:
    load_balancer: peak_ewma
    split: {v1: 90, v2: 10}
    retries: {attempts: 2}
    outlier_detection: {consecutive_5xx: 5, base_ejection_s: 30, max_ejection_percent: 10}
"""

ENVOY_CLUSTER = """
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    lb_policy: LEAST_REQUEST
    outlier_detection:
      {{consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s, max_ejection_percent: 10}}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
"""

ENVOY_ROUTE = """
                  weighted_clusters:
                    clusters:
                    - {name: v1, weight: 90}
                    - {name: v2, weight: 10}
                  retry_policy: {retry_on: "connect-failure,refused-stream,gateway-error", num_retries: 2}"""



def sidecar(
    tmp: Path, name: str, endpoints: Path, policy: Path, otlp: str | None
) -> tuple[int, subprocess.Popen]:
    inbound, outbound, admin = free_port(), free_port(), free_port()
    telemetry = ["--otlp", otlp, "--trace-sample", "0.01"] if otlp else ["--trace-sample", "0"]
    proc = spawn(
        PROXY_CPU, PY, "-m", "proxies", "--service", "bench", "--version", "v1",
        "--app", "127.0.0.1:1", "--inbound", f"127.0.0.1:{inbound}",
        "--outbound", f"127.0.0.1:{outbound}", "--admin", f"127.0.0.1:{admin}",
        "--endpoints", str(endpoints), "--policy", str(policy), *telemetry,
        "--log-level", "WARNING", log=tmp / f"{name}.log",
    )  # fmt: skip
    return outbound, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sidecar-policy-"))
    v1, v2, sink = free_port(), free_port(), free_port()
    envoy_port, envoy_admin = free_port(), free_port()
    endpoints = tmp / "endpoints.json"
    endpoints.write_text(json.dumps({"upstream": [
        {"instance": "u-v1", "version": "v1", "address": f"127.0.0.1:{v1}"},
        {"instance": "u-v2", "version": "v2", "address": f"127.0.0.1:{v2}"},
    ]}))  # fmt: skip
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    clusters = "".join(ENVOY_CLUSTER.format(name=n, port=p) for n, p in (("v1", v1), ("v2", v2)))
    (tmp / "envoy.yaml").write_text(envoy_config(envoy_admin, envoy_port, ENVOY_ROUTE, clusters))
    procs: list[subprocess.Popen] = []
    try:
        procs += [spawn(LOAD_CPU, PY, "-c", UPSTREAM, str(port)) for port in (v1, v2)]
        procs.append(spawn(LOAD_CPU, PY, "-c", OTLP_SINK, str(sink)))
        full_port, full = sidecar(tmp, "sidecar", endpoints, policy, f"http://127.0.0.1:{sink}")
        quiet_port, quiet = sidecar(tmp, "sidecar-notel", endpoints, policy, None)
        envoy = start_envoy(tmp / "envoy.yaml", tmp / "envoy.log")
        procs += [full, quiet, envoy]
        for port in (v1, v2, sink, full_port, quiet_port, envoy_port):
            wait_port(port)
        results = measure({
            "direct": (v1, []), "sidecar": (full_port, [full]),
            "sidecar-notel": (quiet_port, [quiet]), "envoy": (envoy_port, [envoy]),
        }, args.rounds, args.seconds)  # fmt: skip
        rss = {"sidecar": rss_mb(full.pid), "envoy": rss_mb(envoy.pid)}
    finally:
        stop_all(procs)

    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    direct = med["direct"]["p50"]
    added = {n: med[n]["p50"] - direct for n in ("sidecar", "sidecar-notel", "envoy")}
    goals = [
        ("added p50 (c1) vs Envoy", added["sidecar"], added["envoy"], "<=", 1.5, "µs"),
        ("CPU per request vs Envoy", med["sidecar"]["cpu"], med["envoy"]["cpu"], "<=", 2.0, "µs"),
        ("saturation rps vs Envoy", med["sidecar"]["rps"], med["envoy"]["rps"], ">=", 0.8, "rps"),
        ("CPU per request, telemetry on vs off", med["sidecar"]["cpu"], med["sidecar-notel"]["cpu"],
         "<=", 1.3, "µs"),
    ]  # fmt: skip
    lines = [
        "## Sidecar with full policy",
        "",
        f"`bench/sidecar_policy.py`, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; wrk and "
        f"upstreams on CPU {LOAD_CPU}, proxies on CPU {PROXY_CPU}; {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s, medians. Both proxies: 90/10 split over v1/v2, retries (2, gateway errors), "
        "outlier detection (5 consecutive 5xx), default circuit breakers; sidecar peak-EWMA, Envoy "
        "least-request. `sidecar-notel`: same policy, no OTLP export, no spans.",
        "",
        "| path | p50 c=1 (µs) | added p50 (µs) | rps c=50 | proxy CPU/req (µs) |",
        "|---|---|---|---|---|",
        f"| direct (v1) | {direct:.1f} | - | {med['direct']['rps']:.0f} | - |",
    ]
    for name in ("sidecar", "sidecar-notel", "envoy"):
        lines.append(f"| {name} | {med[name]['p50']:.1f} | {added[name]:.1f} | {med[name]['rps']:.0f} | "
                     f"{med[name]['cpu']:.1f} |")
    lines += ["", f"RSS: sidecar {rss['sidecar']:.1f} MB, Envoy {rss['envoy']:.1f} MB.", "",
              "| goal | ours | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for label, ours, theirs, sense, target, unit in goals:
        ratio = ours / theirs if theirs > 0 else float("inf")
        met = ratio <= target if sense == "<=" else ratio >= target
        lines.append(f"| {label} | {ours:.1f} {unit} | {theirs:.1f} {unit} | {ratio:.2f}x | "
                     f"{sense} {target}x | {'yes' if met else 'NO'} |")
    report(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
