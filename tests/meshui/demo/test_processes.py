from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from meshui.demo.processes import (
    StartupError,
    Supervisor,
    ephemeral_ports,
    free_port_block,
    log_probe,
    tcp_probe,
)
from tests.polling import wait_until

SPAWNS_A_GRANDCHILD = (
    "import subprocess, sys, time;"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
    "print('grandchild', p.pid, flush=True);"
    "time.sleep(60)"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


def test_stop_ends_children_and_their_children(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    child = supervisor.start("spawner", [sys.executable, "-c", SPAWNS_A_GRANDCHILD])
    supervisor.wait_ready(child, log_probe(child.log_path, "grandchild"))
    grandchild = int(child.log_path.read_text().split()[1])

    started = time.monotonic()
    supervisor.stop(grace=3)

    assert time.monotonic() - started < 5
    assert not _alive(child.process.pid)
    wait_until(lambda: not _alive(grandchild), timeout=5)  # a signalled process takes a moment
    assert supervisor.children == []


def test_a_child_that_exits_early_fails_startup_with_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    child = supervisor.start("broken", [sys.executable, "-c", "raise SystemExit('bad flag --x')"])

    with pytest.raises(StartupError, match="bad flag --x"):
        supervisor.wait_ready(child, tcp_probe("127.0.0.1", 9), timeout=10)
    supervisor.stop()


def test_a_failed_one_off_command_raises(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, base_env=dict(os.environ))

    with pytest.raises(StartupError, match="code 3"):
        supervisor.run_to_completion("migrate", [sys.executable, "-c", "raise SystemExit(3)"])



def test_a_port_block_lies_below_the_ephemeral_range_where_no_connection_can_take_it() -> None:
    ephemeral = ephemeral_ports()
    room_below = ephemeral.start - 30 > 10000  # Linux's default range starts at 32768
    for _ in range(20):
        base = free_port_block(30)
        assert base >= 10000
        assert base + 30 <= ephemeral.start or not room_below, (base, ephemeral)
