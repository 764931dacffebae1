"""ProcessSandbox: the persistent shell protocol, timeouts, input, output cap, cleanup."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest

from convo.errors import PathOutsideWorkspace, SandboxError
from convo.runtime.base import Sandbox, SandboxSpec
from convo.runtime.process import ProcessSandbox, ProcessSandboxFactory
from convo.runtime.shell import group_pids
from tests.polling import wait_until
from tests.processes import wait_gone


def test_factory_matches_the_protocol(spec: SandboxSpec) -> None:
    factory = ProcessSandboxFactory()
    assert factory.name == "process"
    box: Sandbox = factory.create(spec)
    assert box.workspace_path == str(spec.workspace)


async def test_start_creates_the_workspace(sandbox: ProcessSandbox, spec: SandboxSpec) -> None:
    assert spec.workspace.is_dir()
    result = await sandbox.run("pwd")
    assert result.output == str(spec.workspace)
    assert result.working_dir == str(spec.workspace)


async def test_cwd_and_env_persist(sandbox: ProcessSandbox, spec: SandboxSpec) -> None:
    await sandbox.run("mkdir -p sub/dir && cd sub/dir && export GREETING=hi && count=3")
    result = await sandbox.run('echo "$GREETING $count $PWD"')
    assert result.output == f"hi 3 {spec.workspace}/sub/dir"
    assert result.working_dir == f"{spec.workspace}/sub/dir"
    declared = await sandbox.run("declare -A m=([k]=v); echo ${m[k]}")
    assert declared.output == "v"
    assert (await sandbox.run("echo ${m[k]}")).output == "v"


async def test_exit_codes_and_stderr(sandbox: ProcessSandbox) -> None:
    assert (await sandbox.run("true")).exit_code == 0
    assert (await sandbox.run("false")).exit_code == 1
    assert (await sandbox.run("(exit 42)")).exit_code == 42
    result = await sandbox.run("echo oops >&2; ls /nonexistent-dir")
    assert "oops" in result.output
    assert result.exit_code == 2
    syntax = await sandbox.run("if then")
    assert syntax.exit_code == 2
    assert "syntax error" in syntax.output


async def test_multiline_commands_and_quotes(sandbox: ProcessSandbox) -> None:
    result = await sandbox.run("cat <<'EOF'\nit's \"quoted\" $HOME\nEOF")
    assert result.output == 'it\'s "quoted" $HOME'
    loop = await sandbox.run("for i in 1 2 3; do\n  echo n$i\ndone")
    assert loop.output == "n1\nn2\nn3"


async def test_exit_restarts_the_shell_in_the_same_directory(sandbox: ProcessSandbox) -> None:
    await sandbox.run("mkdir -p d && cd d")
    result = await sandbox.run("exit 3")
    assert result.exit_code == -1
    assert "exited with code 3" in result.output
    assert (await sandbox.run("pwd")).output.endswith("/d")


async def test_output_is_decoded_with_replacement(sandbox: ProcessSandbox) -> None:
    result = await sandbox.run(r"printf 'caf\xc3\xa9 \xff end'")
    assert result.output == "café \ufffd end"


async def test_timeout_interrupts_and_the_shell_stays_usable(sandbox: ProcessSandbox) -> None:
    await sandbox.run("export KEEP=yes")
    started = time.monotonic()
    result = await sandbox.run("echo before; sleep 30; echo after", timeout=1)
    assert time.monotonic() - started < 4
    assert result.timed_out
    assert result.exit_code == -1
    assert "before" in result.output
    assert "\nafter" not in result.output
    assert "timed out after 1 seconds" in result.output
    follow = await sandbox.run("echo $KEEP")
    assert (follow.output, follow.exit_code, follow.timed_out) == ("yes", 0, False)


async def test_timeout_abandons_a_loop(sandbox: ProcessSandbox) -> None:
    result = await sandbox.run("while true; do sleep 0.2; done", timeout=0.5)
    assert result.timed_out
    assert "interrupted" in result.output
    assert (await sandbox.run("echo ok")).output == "ok"


async def test_a_command_that_ignores_sigint_gets_the_shell_restarted(
    sandbox: ProcessSandbox,
) -> None:
    await sandbox.run("mkdir -p keep && cd keep")
    result = await sandbox.run("trap '' INT; sleep 30", timeout=0.5)
    assert result.timed_out
    assert "new shell was started" in result.output
    after = await sandbox.run("pwd")
    assert after.output.endswith("/keep")


async def test_is_input_answers_a_prompt(sandbox: ProcessSandbox) -> None:
    result = await sandbox.run('read -p "name? " name; echo "hello $name"', timeout=1)
    assert result.timed_out
    assert "waiting for input" in result.output
    busy = await sandbox.run("echo other")
    assert "still running" in busy.output
    answered = await sandbox.run("alice", is_input=True)
    assert answered.output == "hello alice"
    assert answered.exit_code == 0
    assert not answered.timed_out


async def test_is_input_c_c_interrupts_a_prompt(sandbox: ProcessSandbox) -> None:
    result = await sandbox.run("python3 -c 'print(input(\"q? \"))'", timeout=1)
    assert result.timed_out
    assert "q?" in result.output
    stopped = await sandbox.run("C-c", is_input=True, timeout=5)
    assert stopped.exit_code == -1
    assert "KeyboardInterrupt" in stopped.output
    assert (await sandbox.run("echo ok")).output == "ok"


async def test_is_input_without_a_running_command(sandbox: ProcessSandbox) -> None:
    result = await sandbox.run("hello", is_input=True)
    assert "No command is running" in result.output
    assert result.exit_code != 0


async def test_output_is_cut_in_the_middle(sandbox: ProcessSandbox) -> None:
    result = await sandbox.run("seq 1 100000")
    full = "\n".join(str(n) for n in range(1, 100_001))
    match = re.fullmatch(
        r"(.*)\n\[\.\.\. (\d+) characters of output omitted \.\.\.\]\n(.*)", result.output, re.S
    )
    assert match is not None
    front, omitted, back = match.group(1), int(match.group(2)), match.group(3)
    assert full.startswith(front)
    assert full.endswith(back)
    assert len(front) + len(back) <= 1000
    assert omitted == len(full) - len(front) - len(back)


async def test_huge_output_stays_bounded(sandbox: ProcessSandbox) -> None:
    result = await sandbox.run("head -c 50000000 /dev/zero | tr '\\0' x; echo; echo END")
    assert result.output.endswith("END")
    assert len(result.output) < 1100
    assert "omitted" in result.output


async def test_commands_run_one_at_a_time(sandbox: ProcessSandbox) -> None:
    first, second = await asyncio.gather(
        sandbox.run("sleep 0.3; echo first"), sandbox.run("echo second")
    )
    assert (first.output, second.output) == ("first", "second")


async def test_server_environment_is_not_visible(
    sandbox: ProcessSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVO_SERVER_SECRET", "hunter2")
    await sandbox.run("true")  # the shell already runs; a restart must not leak it either
    await sandbox.run("exit 0")
    result = await sandbox.run('echo "${CONVO_SERVER_SECRET:-unset} $CONVO_SPEC_VAR"; env')
    assert result.output.startswith("unset from-spec")
    assert "hunter2" not in result.output
    assert f"HOME={sandbox.workspace_path}" in result.output
    assert "TERM=dumb" in result.output


async def test_a_fresh_sandbox_does_not_inherit_the_server_env(
    spec: SandboxSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVO_SERVER_SECRET", "hunter2")
    box = ProcessSandbox(spec)
    await box.start()
    try:
        assert "hunter2" not in (await box.run("env")).output
    finally:
        await box.close()


async def test_close_kills_running_and_background_processes(sandbox: ProcessSandbox) -> None:
    started = await sandbox.run("sleep 1000 & echo $!; nohup sleep 1001 >/dev/null 2>&1 & echo $!")
    background = [int(pid) for pid in started.output.split()]
    running = asyncio.create_task(sandbox.run("sleep 1002", timeout=30))
    shell = sandbox.shell_pid
    assert shell is not None
    members: list[int] = []

    async def all_started() -> bool:
        members[:] = await asyncio.to_thread(group_pids, shell)
        # bash, two background sleeps, the foreground sleep
        return set(background) <= set(members) and len(members) >= 4

    await wait_until(all_started, 10, what="the foreground sleep to start")
    await sandbox.close()
    await sandbox.close()  # idempotent
    assert await wait_gone(members, 3.0) == []
    result = await running
    assert result.exit_code == -1
    with pytest.raises(SandboxError):
        await sandbox.run("true")


async def test_run_before_start_fails(spec: SandboxSpec) -> None:
    with pytest.raises(SandboxError):
        await ProcessSandbox(spec).run("true")


async def test_missing_bash_is_a_sandbox_error(spec: SandboxSpec) -> None:
    box = ProcessSandbox(spec, bash="/nonexistent/bash")
    with pytest.raises(SandboxError):
        await box.start()


async def test_workspace_paths_stay_inside_the_workspace(
    sandbox: ProcessSandbox, spec: SandboxSpec, tmp_path: Path
) -> None:
    root = spec.workspace
    workspace = sandbox.workspace
    assert workspace.resolve("a/b.txt") == "a/b.txt"
    assert workspace.resolve(str(root / "x")) == "x"
    assert workspace.resolve(".") == ""
    (root / "inner").mkdir()
    os.symlink(root / "inner", root / "link-in")
    assert workspace.resolve("link-in/f") == "inner/f"
    os.symlink(tmp_path, root / "link-out")
    for bad in ("../x", "/etc/passwd", "link-out/secret", str(tmp_path / "workspaces" / "c2")):
        with pytest.raises(PathOutsideWorkspace):
            workspace.resolve(bad)
