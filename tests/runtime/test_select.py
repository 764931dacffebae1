"""choose_sandbox_factory / bwrap_available: auto, sandbox and process modes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from convo.errors import SandboxUnavailable
from convo.runtime.base import SandboxSpec
from convo.runtime.bwrap import BwrapSandbox, BwrapSandboxFactory
from convo.runtime.limits import ResourceLimits, SandboxCgroup
from convo.runtime.process import ProcessSandboxFactory
from convo.runtime.select import bwrap_available, choose_sandbox_factory

MISSING = "/nonexistent/bwrap"


def test_process_mode() -> None:
    assert isinstance(choose_sandbox_factory("process"), ProcessSandboxFactory)


def test_auto_uses_bubblewrap_where_it_works() -> None:
    factory = choose_sandbox_factory("auto", network="none")
    assert isinstance(factory, BwrapSandboxFactory)
    assert factory.name == "sandbox"
    assert factory.network == "none"


def test_auto_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="convo.runtime.select"):
        factory = choose_sandbox_factory("auto", bwrap=MISSING)
    assert factory.name == "process"
    assert "UNCONFINED" in caplog.text


async def test_sandbox_mode_never_falls_back(spec: SandboxSpec) -> None:
    factory = choose_sandbox_factory("sandbox", bwrap=MISSING)
    assert factory.name == "sandbox"
    sandbox = factory.create(spec)
    with pytest.raises(SandboxUnavailable):
        await sandbox.start()
    await sandbox.close()


def test_probe() -> None:
    assert bwrap_available()
    assert not bwrap_available(MISSING)


def test_ulimit_script() -> None:
    script = ResourceLimits(
        cpu_seconds=5, address_space_bytes=2048, max_processes=9
    ).ulimit_script()
    assert "ulimit -t 5 || exit 97" in script
    assert "ulimit -v 2 || exit 97" in script
    assert "ulimit -u 9 || exit 97" in script
    assert "ulimit -c 0 || exit 97" in script
    none = ResourceLimits(
        cpu_seconds=None,
        address_space_bytes=None,
        file_size_bytes=None,
        open_files=None,
        max_processes=None,
    )
    assert none.ulimit_script() == "ulimit -c 0 || exit 97\n"


async def test_cgroups_are_removed_on_close(spec: SandboxSpec, tmp_path: Path) -> None:
    sandbox = BwrapSandbox(spec, limits=ResourceLimits(max_processes=32))
    await sandbox.start()
    cgroup = sandbox._cgroup  # the directories to watch
    assert isinstance(cgroup, SandboxCgroup)
    dirs = list(cgroup.dirs)
    assert dirs, "the sandbox joined no cgroup, so there is nothing to watch being removed"
    await sandbox.close()
    assert all(not directory.exists() for directory in dirs)
