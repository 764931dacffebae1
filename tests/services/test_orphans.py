"""Shell process groups a killed server left behind are killed at the next start-up."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from convo.services.orphans import ProcessRegistry, start_time
from tests.processes import pid_gone


def _spawn_shell_with_a_child() -> tuple[subprocess.Popen[bytes], int]:
    shell = subprocess.Popen(
        ["bash", "-c", "sleep 60 & echo $!; wait"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert shell.stdout is not None
    child = int(shell.stdout.readline())
    shell.stdout.close()
    return shell, child


def test_leftover_groups_are_killed_and_forgotten(tmp_path: Path) -> None:
    shell, child = _spawn_shell_with_a_child()
    try:
        ProcessRegistry(tmp_path).register("c1", shell.pid)
        assert (tmp_path / "c1.pid").exists()
        killed = ProcessRegistry(tmp_path).kill_leftovers()  # the next server's start-up
        assert set(killed) == {shell.pid, child}
        shell.wait(5)
        for _ in range(100):
            if pid_gone(child):
                break
            time.sleep(0.02)
        assert pid_gone(child)
        assert list(tmp_path.iterdir()) == []
    finally:
        shell.kill()
        shell.wait()


def test_a_recycled_pid_is_left_alone(tmp_path: Path) -> None:
    shell, child = _spawn_shell_with_a_child()
    try:
        started = start_time(shell.pid)
        assert started is not None
        (tmp_path / "c1.pid").write_text(f"{shell.pid} {started - 1}\n")
        assert ProcessRegistry(tmp_path).kill_leftovers() == []
        assert not pid_gone(shell.pid) and not pid_gone(child)
    finally:
        os.killpg(shell.pid, 9)
        shell.wait()


def test_unregistered_shells_leave_no_file(tmp_path: Path) -> None:
    registry = ProcessRegistry(tmp_path / "run")
    registry.register("c1", os.getpid())
    registry.unregister("c1")
    registry.unregister("c1")
    assert ProcessRegistry(tmp_path / "run").kill_leftovers() == []
    assert ProcessRegistry(None).kill_leftovers() == []
