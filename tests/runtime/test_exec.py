"""Sandbox.exec: one program with the sandbox's confinement, a minimal environment, bounded."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from convo.errors import PathOutsideWorkspace
from convo.runtime.base import SandboxSpec
from convo.runtime.bwrap import BwrapSandboxFactory
from convo.runtime.fake import FakeSandbox
from convo.runtime.process import ProcessSandboxFactory


def _spec(tmp_path: Path) -> SandboxSpec:
    workspace = tmp_path / "data" / "workspaces" / "c1"
    (workspace / "sub").mkdir(parents=True)
    return SandboxSpec("c1", workspace, env={"SECRET_TOKEN": "never-in-exec"})


async def test_bwrap_exec_is_confined_without_a_started_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVO_SERVER_ONLY", "host-environment")
    (tmp_path / "data" / "convo.db").parent.mkdir(parents=True)
    (tmp_path / "data" / "convo.db").write_text("database")
    box = BwrapSandboxFactory().create(_spec(tmp_path))
    result = await box.exec(
        ["bash", "-c", "id -u; pwd; env; ls /; cat /etc/shadow; ls ..; echo done"], cwd="sub"
    )
    out = result.stdout.decode()
    assert result.exit_code == 0 and out.rstrip().endswith("done")
    uid, cwd = out.splitlines()[:2]
    assert uid == str(65534 if os.geteuid() == 0 else os.geteuid())
    assert cwd == "/workspace/sub"
    assert "SECRET_TOKEN" not in out and "CONVO_SERVER_ONLY" not in out
    assert "database" not in out and "convo.db" not in out and "root:" not in out
    with pytest.raises(PathOutsideWorkspace):
        await box.exec(["true"], cwd="../other")


async def test_bwrap_exec_has_no_network(tmp_path: Path) -> None:
    box = BwrapSandboxFactory().create(_spec(tmp_path))
    result = await box.exec(["bash", "-c", "ls /sys/class/net 2>/dev/null || cat /proc/net/dev"])
    assert "lo" in result.stdout.decode()
    assert "eth" not in result.stdout.decode() and "ens" not in result.stdout.decode()


async def test_exec_is_bounded_in_time_and_output(tmp_path: Path) -> None:
    box = ProcessSandboxFactory().create(_spec(tmp_path))
    started = time.monotonic()
    slow = await box.exec(["bash", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert slow.timed_out and slow.exit_code == -1
    assert time.monotonic() - started < 10
    loud = await box.exec(["bash", "-c", "yes"], max_output_bytes=1000)
    assert loud.truncated and len(loud.stdout) == 1000
    here = await box.exec(["pwd"], cwd="sub", env={"EXTRA": "1"})
    assert here.stdout.decode().strip().endswith("/workspaces/c1/sub")


async def test_fake_exec_runs_in_its_root_and_records(tmp_path: Path) -> None:
    box = FakeSandbox(tmp_path)
    (tmp_path / "d").mkdir()
    result = await box.exec(["pwd"], cwd="/workspace/d")
    assert result.stdout.decode().strip() == str(tmp_path / "d")
    assert box.execs == [(["pwd"], "/workspace/d")]


async def test_exec_returns_when_something_outside_its_group_holds_its_output(
    tmp_path: Path,
) -> None:
    box = ProcessSandboxFactory().create(_spec(tmp_path))
    started = time.monotonic()
    held = await box.exec(["bash", "-c", "setsid sleep 8 & echo started"], timeout=1)
    assert held.timed_out  # its output never ended: the escaped sleep holds it
    assert time.monotonic() - started < 8
