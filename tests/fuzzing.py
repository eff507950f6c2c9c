"""Property-based fuzzing shared by the suite: a few hundred cases in `make test`, a million in `make fuzz`.

A fuzz target is an ordinary test marked ``@pytest.mark.fuzz`` (or ``pytestmark``) whose
``@given`` is wrapped in ``@examples()``, and that calls ``outcome(target, label)`` once per
case with what the system under test answered ("400", "200", "partial", "nack", ...).
``make fuzz`` sets ``FUZZ_EXAMPLES`` and ``HYPOTHESIS_PROFILE=fuzz`` and prints the tally:
the bar is 0 crashes (a crash fails the test) and 0 answers of 5xx.

In `make test` the ``ci`` profile is derandomized: the same cases every run, so a fuzz test
cannot fail one fresh clone in ten. ``make fuzz`` draws new cases each run.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, settings

# Cases per target in `make test` (FUZZ_EXAMPLES overrides; make fuzz sets it high).
CI_EXAMPLES = 200

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz",
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# (target, label) -> cases seen in this process.
OUTCOMES: Counter[tuple[str, str]] = Counter()


def examples(cost: int = 1) -> settings:
    """Hypothesis settings for one fuzz target; ``cost`` divides the count for slow targets
    (one that starts a socket per case, say), so each target takes a similar time."""
    base = int(os.environ.get("FUZZ_EXAMPLES", CI_EXAMPLES))
    return settings(max_examples=max(10, base // cost))


def outcome(target: str, label: str | int) -> None:
    """Count one fuzz case of ``target`` by what it answered (an HTTP status, "nack", ...)."""
    OUTCOMES[(target, str(label))] += 1


def is_server_error(label: str) -> bool:
    """A bare 5xx: the system failed on the input (a crash turned into 500, say).

    A 5xx the system makes on purpose carries its error code in the label ("502
    unknown-service": a gateway's right answer for a host with no instances, "501
    unsupported-transfer-coding": RFC 9112's for a coding it does not implement) and is
    counted apart, not against the bar.
    """
    return label.isdigit() and 500 <= int(label) <= 599


def is_deliberate_5xx(label: str) -> bool:
    status, _, code = label.partition(" ")
    return status.isdigit() and 500 <= int(status) <= 599 and bool(code)


def write_report(path: Path) -> None:
    """Add this process's tally to ``path`` (JSON), so parallel runs can be summed."""
    merged: Counter[tuple[str, str]] = Counter()
    if path.exists():
        for row in json.loads(path.read_text()):
            merged[(row["target"], row["label"])] += row["cases"]
    merged.update(OUTCOMES)
    rows = [{"target": t, "label": label, "cases": n} for (t, label), n in sorted(merged.items())]
    path.write_text(json.dumps(rows, indent=1))


def summary_lines(outcomes: Counter[tuple[str, str]]) -> list[str]:
    """The tally as a table: one line per target with its outcome counts, then the totals."""
    by_target: dict[str, Counter[str]] = {}
    for (target, label), n in outcomes.items():
        by_target.setdefault(target, Counter())[label] += n
    lines = []
    width = max((len(t) for t in by_target), default=6)
    for target in sorted(by_target):
        counts = by_target[target]
        detail = ", ".join(f"{label}: {n}" for label, n in sorted(counts.items()))
        lines.append(f"{target:<{width}}  {sum(counts.values()):>9}  {detail}")
    total = sum(outcomes.values())
    errors = sum(n for (_, label), n in outcomes.items() if is_server_error(label))
    deliberate = sum(n for (_, label), n in outcomes.items() if is_deliberate_5xx(label))
    lines.append(f"{'total':<{width}}  {total:>9}  5xx: {errors} (and {deliberate} deliberate "
                 "gateway answers with their error code, e.g. 502 unknown-service)")
    return lines


def main() -> int:
    """`make fuzz`: rounds of every fuzz target until FUZZ_TOTAL cases (default 1,000,000) ran.

    Each round runs the ``fuzz``-marked tests with FUZZ_EXAMPLES set so the round covers
    what is left, with fresh random cases (profile ``fuzz``), split over FUZZ_JOBS pytest
    processes (default: one per core); every process adds its tally to its own report and
    the rounds' reports are summed. Exits non-zero if any case crashed or answered 5xx.
    """
    import math
    import subprocess
    import sys
    import time

    goal = int(os.environ.get("FUZZ_TOTAL", 1_000_000))
    jobs = max(1, int(os.environ.get("FUZZ_JOBS", os.cpu_count() or 1)))
    report = Path(os.environ.get("FUZZ_REPORT", "var/fuzz.json"))
    report.parent.mkdir(parents=True, exist_ok=True)
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "fuzz", "--collect-only", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, check=False,
    )
    targets = [line for line in listed.stdout.splitlines() if "::" in line]
    if not targets:
        print("no fuzz targets collected:\n" + listed.stdout + listed.stderr)
        return 1
    # Round-robin, so targets of one file (often alike in speed) spread over the jobs.
    groups = [targets[i::jobs] for i in range(jobs) if targets[i::jobs]]
    reports = [report.with_suffix(f".{i}.json") for i in range(len(groups))]
    for path in reports:
        path.unlink(missing_ok=True)
    started, failed, rounds, done = time.monotonic(), False, 0, 0
    tally: Counter[tuple[str, str]] = Counter()
    while done < goal and not failed:
        rounds += 1
        per_target = math.ceil((goal - done) / len(targets))
        print(f"==> fuzz round {rounds}: {len(targets)} targets in {len(groups)} processes, "
              f"up to {per_target} cases each", flush=True)
        running = [
            subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=0", *group],
                env={**os.environ, "FUZZ_EXAMPLES": str(per_target), "HYPOTHESIS_PROFILE": "fuzz",
                     "FUZZ_REPORT": str(path)},
            )
            for group, path in zip(groups, reports, strict=True)
        ]
        failed = any(process.wait() != 0 for process in running)
        tally = Counter()
        for path in reports:
            for row in json.loads(path.read_text()) if path.exists() else []:
                tally[(row["target"], row["label"])] += row["cases"]
        if sum(tally.values()) <= done:
            break  # no progress: a target that runs no cases
        done = sum(tally.values())
    rows = [{"target": t, "label": label, "cases": n} for (t, label), n in sorted(tally.items())]
    report.write_text(json.dumps(rows, indent=1))
    minutes = (time.monotonic() - started) / 60
    print(f"\n==> fuzz: {done} cases in {rounds} round(s), {minutes:.1f} min (tally in {report})")
    for line in summary_lines(tally):
        print(line)
    server_errors = sum(n for (_, label), n in tally.items() if is_server_error(label))
    print(f"crashes (failed targets): {'some, see above' if failed else 0}; 5xx answers: {server_errors}")
    return 1 if failed or server_errors or done < goal else 0


if __name__ == "__main__":
    raise SystemExit(main())
