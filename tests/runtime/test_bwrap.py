"""BwrapSandbox: confinement, cleanup, resource limits and network, on the real kernel.

Nothing here is skipped: if bubblewrap cannot run on this machine, these tests fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from convo.agent.editor import FileEditor
from convo.errors import PathOutsideWorkspace, SandboxUnavailable
from convo.runtime import limits as limits_module
from convo.runtime.base import SandboxSpec
from convo.runtime.bwrap import BwrapSandbox, BwrapSandboxFactory
from convo.runtime.limits import GIB, ResourceLimits
from convo.runtime.network import NetworkMode
from convo.runtime.select import bwrap_available
from convo.runtime.shell import group_pids
from tests.polling import wait_until
from tests.processes import wait_gone

MIB = 1024**2
SMALL = ResourceLimits(max_processes=64, memory_bytes=256 * MIB, cpu_seconds=2)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A server data dir: a database next to the workspaces, and another conversation."""
    data = tmp_path / "data"
    (data / "workspaces" / "other").mkdir(parents=True)
    (data / "convo.db").write_text("SQLite format 3 - secret rows")
    (data / "workspaces" / "other" / "notes.txt").write_text("other conversation")
    return data


def make_spec(data_dir: Path, name: str = "c1") -> SandboxSpec:
    return SandboxSpec(
        conversation_id=name,
        workspace=data_dir / "workspaces" / name,
        env={"CONVO_SPEC_VAR": "from-spec"},
        command_timeout_seconds=10.0,
        max_output_chars=4000,
    )


@pytest.fixture
async def box(data_dir: Path) -> AsyncIterator[BwrapSandbox]:
    sandbox = BwrapSandboxFactory(limits=SMALL).create(make_spec(data_dir))
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.close()


def sandbox_pids(box: BwrapSandbox) -> list[int]:
    """Every host pid in the sandbox's PID namespace (found through the shell's group)."""
    assert box.shell_pid is not None
    own = os.readlink("/proc/self/ns/pid")
    spaces = set()
    for pid in group_pids(box.shell_pid):
        try:
            spaces.add(os.readlink(f"/proc/{pid}/ns/pid"))
        except OSError:
            continue
    spaces.discard(own)
    assert len(spaces) == 1
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") in spaces:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_bubblewrap_works_on_this_machine() -> None:
    assert bwrap_available(), "bwrap cannot start a sandbox here: install bubblewrap"


async def test_workspace_is_mounted_at_slash_workspace(box: BwrapSandbox, data_dir: Path) -> None:
    assert box.workspace_path == "/workspace"
    result = await box.run('pwd; echo "$HOME"; echo hi > made.txt; id -u')
    lines = result.output.splitlines()
    assert lines[:2] == ["/workspace", "/workspace"]
    assert (data_dir / "workspaces" / "c1" / "made.txt").read_text() == "hi\n"
    if os.geteuid() == 0:
        assert lines[2] != "0"  # never root inside


async def test_writing_outside_the_workspace_fails(box: BwrapSandbox, tmp_path: Path) -> None:
    for target in ("/usr/x", "/etc/x", "/x", "/bin/x", f"{tmp_path}/x"):
        result = await box.run(f"echo pwned > {target}")
        assert result.exit_code != 0, target
    assert not (tmp_path / "x").exists()
    scratch = await box.run("echo scratch > /tmp/scratch && cat /tmp/scratch")
    assert scratch.output == "scratch"  # a private tmpfs
    assert not Path("/tmp/scratch").exists()


async def test_server_files_are_invisible(box: BwrapSandbox, data_dir: Path) -> None:
    db = data_dir / "convo.db"
    for command in (f"cat {db}", f"ls {data_dir}", "ls /root", "cat /etc/shadow"):
        result = await box.run(command)
        assert result.exit_code != 0, command
        assert "No such file or directory" in result.output
    listing = await box.run("ls -a /workspace; ls /")
    assert "convo.db" not in listing.output
    assert "workspaces" not in listing.output


async def test_other_conversations_are_invisible(box: BwrapSandbox, data_dir: Path) -> None:
    other = data_dir / "workspaces" / "other"
    result = await box.run(f"cat {other}/notes.txt")
    assert "other conversation" not in result.output
    assert "No such file or directory" in result.output
    listing = await box.run("ls -a /workspace/.. /workspace")
    assert "other" not in listing.output.split()
    assert "notes.txt" not in listing.output.split()


async def test_server_environment_is_not_visible(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVO_SERVER_SECRET", "hunter2")
    sandbox = BwrapSandbox(make_spec(data_dir), limits=SMALL)
    await sandbox.start()
    try:
        result = await sandbox.run('echo "${CONVO_SERVER_SECRET:-unset} $CONVO_SPEC_VAR"; env')
    finally:
        await sandbox.close()
    assert result.output.startswith("unset from-spec")
    assert "hunter2" not in result.output


async def test_close_leaves_no_process_behind(box: BwrapSandbox) -> None:
    await box.run(
        "sleep 1000 & nohup sleep 1001 >/dev/null 2>&1 & setsid sleep 1002 >/dev/null 2>&1 &"
    )
    running = asyncio.create_task(box.run("sleep 1003", timeout=30))
    inside: list[int] = []

    def all_started() -> bool:
        inside[:] = sandbox_pids(box)
        sleeps = set()
        for pid in inside:
            with contextlib.suppress(OSError):
                sleeps.add(Path(f"/proc/{pid}/cmdline").read_bytes())
        # init, bash, the four sleeps (counting alone could count a transient fork instead)
        return {f"sleep\0{n}\0".encode() for n in range(1000, 1004)} <= sleeps

    await wait_until(all_started, 10, what="the foreground sleep to start")
    launcher = box.shell_pid
    assert launcher is not None
    await box.close()
    await box.close()
    assert await wait_gone([*inside, launcher]) == []
    assert (await running).exit_code == -1


async def test_timeout_and_input_work_inside(box: BwrapSandbox) -> None:
    result = await box.run("sleep 30", timeout=1)
    assert result.timed_out
    assert "interrupted" in result.output
    prompt = await box.run('read -r name; echo "hello $name"', timeout=1)
    assert "waiting for input" in prompt.output
    assert (await box.run("bob", is_input=True)).output == "hello bob"


async def fork_bomb_then_fresh_sandbox(data_dir: Path, limits: ResourceLimits) -> None:
    factory = BwrapSandboxFactory(limits=limits)
    bombed = factory.create(make_spec(data_dir))
    await bombed.start()
    try:
        result = await bombed.run("bomb() { bomb | bomb & }; bomb; sleep 2; echo done", timeout=8)
        assert "Resource temporarily unavailable" in result.output
        count = len(sandbox_pids(bombed))
        assert count <= (limits.max_processes or 0) + 2  # + the outer bwrap and its init
    finally:
        await bombed.close()
    assert os.getpid() > 0 and (await asyncio.create_subprocess_exec("true")).pid > 0
    fresh = factory.create(make_spec(data_dir))
    await fresh.start()
    try:
        assert (await fresh.run("echo ok")).output == "ok"
    finally:
        await fresh.close()


async def test_fork_bomb_hits_the_pids_cgroup(data_dir: Path) -> None:
    probe = BwrapSandbox(make_spec(data_dir, "probe"), limits=SMALL)
    await probe.start()
    enforced = probe.enforced_limits
    await probe.close()
    if os.geteuid() == 0 and Path("/sys/fs/cgroup/pids/cgroup.procs").exists():
        assert "pids.max=64" in enforced
    await fork_bomb_then_fresh_sandbox(data_dir, SMALL)


async def test_fork_bomb_hits_rlimit_nproc_without_cgroups(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits_module, "CGROUP_ROOT", data_dir / "no-cgroups")
    await fork_bomb_then_fresh_sandbox(data_dir, SMALL)


async def test_memory_hog_is_stopped_and_the_sandbox_recovers(box: BwrapSandbox) -> None:
    result = await box.run("python3 -c 'a = bytearray(2 * 1024**3); print(len(a))'")
    assert result.exit_code != 0
    assert "2147483648" not in result.output
    assert (await box.run("echo still here")).output == "still here"


async def test_address_space_limit_without_cgroups(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits_module, "CGROUP_ROOT", data_dir / "no-cgroups")
    sandbox = BwrapSandbox(make_spec(data_dir), limits=ResourceLimits(address_space_bytes=1 * GIB))
    await sandbox.start()
    try:
        assert sandbox.enforced_limits == []
        result = await sandbox.run("python3 -c 'a = bytearray(2 * 1024**3)'")
        assert result.exit_code == 1
        assert "MemoryError" in result.output
    finally:
        await sandbox.close()


async def test_cpu_limit_kills_a_busy_loop(box: BwrapSandbox) -> None:
    # the exit code says the kernel killed it (a timeout would give -1); no wall-clock bound:
    # on a loaded machine two CPU seconds take many more seconds of wall time
    result = await box.run("python3 -c 'while True: pass'", timeout=50)
    assert result.exit_code in (137, 152)  # SIGKILL or SIGXCPU
    assert (await box.run("echo ok")).output == "ok"


async def network_reaches(data_dir: Path, network: NetworkMode, port: int) -> str:
    sandbox = BwrapSandbox(make_spec(data_dir), network=network, limits=SMALL)
    await sandbox.start()
    try:
        script = (
            "import socket\n"
            f"socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "print('connected', sorted(name for _, name in socket.if_nameindex()))"
        )
        result = await sandbox.run(f'python3 -c "{script}"')
        return result.output
    finally:
        await sandbox.close()


async def test_network_can_be_cut(data_dir: Path) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert "connected" in await network_reaches(data_dir, "host", port)
        cut = await network_reaches(data_dir, "none", port)
        assert "connected" not in cut
        assert "Error" in cut
        if os.geteuid() == 0:  # isolated: the sandbox's 127.0.0.1 is its own
            isolated = await network_reaches(data_dir, "isolated", port)
            assert "ConnectionRefusedError" in isolated, isolated
    finally:
        server.close()
        await server.wait_closed()


async def test_workspace_paths_follow_the_sandbox_view(box: BwrapSandbox, data_dir: Path) -> None:
    root = data_dir / "workspaces" / "c1"
    workspace = box.workspace
    assert workspace.root == root
    assert workspace.resolve("/workspace/a/b.txt") == "a/b.txt"
    assert workspace.resolve("a/b.txt") == "a/b.txt"
    assert workspace.resolve("/workspace") == ""
    await box.run(
        "mkdir real && ln -s /workspace/real abs && ln -s real rel && "
        "ln -s /etc/passwd passwd && ln -s ../.. up && ln -s loop loop"
    )
    assert workspace.resolve("abs/f") == "real/f"
    assert workspace.resolve("rel/f") == "real/f"
    for bad in ("/etc/passwd", "../x", "/workspace/../etc", "passwd", "up/x", "loop", str(root)):
        with pytest.raises(PathOutsideWorkspace):
            workspace.resolve(bad)


async def test_editor_and_shell_share_files(box: BwrapSandbox) -> None:
    editor = FileEditor(box)
    created = await editor(command="create", path="/workspace/pkg/mod.py", file_text="x = 1\n")
    assert created.success
    appended = await box.run("echo 'y = 2' >> pkg/mod.py && cat pkg/mod.py")
    assert appended.output == "x = 1\ny = 2"
    await box.run("printf 'z = 3\\n' > shell.py")
    edited = await editor(command="str_replace", path="shell.py", old_str="3", new_str="4")
    assert edited.success
    outside = await editor(command="view", path="/etc/passwd")
    assert not outside.success
    assert "outside the workspace" in outside.content


async def test_missing_bwrap_is_unavailable(data_dir: Path) -> None:
    sandbox = BwrapSandbox(make_spec(data_dir), bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable):
        await sandbox.start()
    await sandbox.close()


async def test_no_file_outgrows_the_workspace_quota(data_dir: Path) -> None:
    """The kernel stops one file at the quota (RLIMIT_FSIZE); the watch then stops the rest."""
    spec = make_spec(data_dir)
    sandbox = BwrapSandbox(replace(spec, disk_limit_bytes=8 * 2**20), network="none", limits=SMALL)
    await sandbox.start()
    try:
        result = await sandbox.run("head -c 50M /dev/zero > big; echo status=$?; stat -c %s big")
        assert "File too large" in result.output, result.output  # EFBIG at the limit
        assert result.output.splitlines()[-1] == str(8 * 2**20)
        await sandbox.run("echo one-byte-more > small")  # now over the quota as a whole
        failure = await asyncio.wait_for(sandbox.wait_failed(), 20)
        assert "quota of 8 MB" in str(failure)
        with pytest.raises(type(failure)):
            await sandbox.run("echo more")
    finally:
        await sandbox.close()
