"""A process sandbox's shell and everything started in it die with the server, even by
SIGKILL, instead of waiting for the next start-up to be cleaned up."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

from tests.processes import pid_gone

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from convo.runtime.base import SandboxSpec
    from convo.runtime.process import ProcessSandbox

    async def main() -> None:
        spare = [open("/dev/null") for _ in range(20)]  # a busy server: the pipe's fd is > 9
        box = ProcessSandbox(SandboxSpec(conversation_id="c", workspace=Path(sys.argv[1])))
        await box.start()
        background = await box.run("sleep 300 >/dev/null 2>&1 & echo $!")
        watchdogs = await box.run("ps -o args= -g $$ | grep -c '^/bin/sh -c trap'")
        assert watchdogs.output.strip() == "1", watchdogs.output
        print(box.shell_pid, background.output.strip(), flush=True)
        await box.run("sleep 300", timeout=600)  # the server dies in the middle of this

    asyncio.run(main())
    """
)


async def test_the_shell_dies_with_a_killed_server(tmp_path: Path) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, str(tmp_path / "ws"), stdout=asyncio.subprocess.PIPE
    )
    assert server.stdout is not None
    line = await asyncio.wait_for(server.stdout.readline(), 20)
    shell_pid, sleep_pid = (int(x) for x in line.split())
    assert not pid_gone(shell_pid) and not pid_gone(sleep_pid)
    await asyncio.sleep(0.3)  # the foreground `sleep 300` is running now
    server.send_signal(signal.SIGKILL)
    await server.wait()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while (not pid_gone(shell_pid) or not pid_gone(sleep_pid)) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert pid_gone(shell_pid)
    assert pid_gone(sleep_pid)


SPAWNING_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from convo.runtime.base import SandboxSpec
    from convo.runtime.process import ProcessSandbox

    async def main() -> None:
        spare = [open("/dev/null") for _ in range(20)]
        box = ProcessSandbox(SandboxSpec(conversation_id="c", workspace=Path(sys.argv[1])))
        await box.start()
        program = await box.spawn(["sh", "-c", "echo $$; exec sleep 300"])
        pid = int(await program.stdout.readline())
        print(pid, flush=True)
        await asyncio.sleep(300)  # the server dies here

    asyncio.run(main())
    """
)


async def test_a_spawned_program_dies_with_a_killed_server(tmp_path: Path) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SPAWNING_SERVER, str(tmp_path / "ws"), stdout=asyncio.subprocess.PIPE
    )
    assert server.stdout is not None
    pid = int(await asyncio.wait_for(server.stdout.readline(), 20))
    assert not pid_gone(pid)
    server.send_signal(signal.SIGKILL)
    await server.wait()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not pid_gone(pid) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert pid_gone(pid)
