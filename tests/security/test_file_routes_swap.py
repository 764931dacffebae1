"""The agent swaps a directory and a symlink to outside, in a loop, while every file route
and the file editor work on the swapped names: nothing outside is read, listed or written.

The server is real (HTTP, the bubblewrap runtime). The attacker runs with the agent's
rights: inside a sandbox over the conversation's workspace (``Sandbox.exec``), as the
sandbox's uid, where it creates ``link`` pointing at a directory of the host and exchanges
it with the real directory ``real`` by ``renameat2(RENAME_EXCHANGE)`` for 20 seconds. What a
conversation's start reads into the system prompt (AGENTS.md, microagents) is read meanwhile
too.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import zipfile
from pathlib import Path

import pytest

from convo.agent.editor import FileEditor
from convo.agent.microagents import repository_instructions
from convo.runtime.base import SandboxSpec
from convo.runtime.bwrap import BwrapSandboxFactory
from convo.runtime.workspace import Workspace
from convo.services.conversations import NewConversation
from tests.api.conftest import RunningServer, make_settings, serve
from tests.security.swap import SWAPPER

SWAP_SECONDS = 20.0
CANARY = b"CANARY-host-file-outside-the-workspace"
OUTSIDE_NAME = "only-outside-the-workspace.txt"
MAX_ROUNDS = 5_000


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory the agent must never reach: a canary file and nothing else."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "canary.txt").write_bytes(CANARY)
    (folder / OUTSIDE_NAME).write_bytes(CANARY)
    (folder / ".openhands" / "microagents").mkdir(parents=True)
    (folder / ".openhands" / "microagents" / "leak.md").write_bytes(CANARY)
    (folder / "AGENTS.md").write_bytes(CANARY)
    return folder


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _leaks(data: bytes) -> bool:
    return CANARY in data or OUTSIDE_NAME.encode() in data


async def _attack_routes(server: RunningServer, cid: str, swapping: asyncio.Task[object]) -> int:
    """Every file route on the swapped names until the swap loop ends; the request count."""
    base = f"/api/conversations/{cid}"
    client = server.client
    rounds = 0
    while not swapping.done() and rounds < MAX_ROUNDS:
        rounds += 1
        name = ("real", "link")[rounds % 2]
        answers = await asyncio.gather(
            client.get(f"{base}/select-file", params={"file": f"{name}/canary.txt"}),
            client.get(f"{base}/list-files", params={"path": name}),
            client.get(f"{base}/git/diff", params={"path": f"{name}/canary.txt"}),
            client.post(
                f"{base}/upload-files",
                files=[("files", (f"{name}/dropped-{rounds}.txt", b"upload", "text/plain"))],
            ),
            client.get(f"{base}/microagents"),
            *([client.get(f"{base}/zip-directory")] if rounds % 10 == 0 else []),
        )
        for answer in answers:
            assert answer.status_code < 500, answer.text
            assert not _leaks(answer.content), answer.request.url
            if answer.headers.get("content-type") == "application/zip":
                with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
                    for member in archive.namelist():
                        assert not _leaks(member.encode() + archive.read(member)), member
    return rounds


async def _attack_instructions(workspace: Workspace, swapping: asyncio.Task[object]) -> int:
    """What a conversation's start reads into the system prompt: AGENTS.md, microagents."""
    rounds = 0
    while not swapping.done() and rounds < MAX_ROUNDS:
        rounds += 1
        found = await asyncio.to_thread(repository_instructions, workspace)
        assert not any(_leaks(f"{source}{text}".encode()) for source, text in found)
    return rounds


async def _attack_editor(editor: FileEditor, swapping: asyncio.Task[object]) -> int:
    rounds = 0
    while not swapping.done() and rounds < MAX_ROUNDS:
        rounds += 1
        name = ("real", "link")[rounds % 2]
        for result in (
            await editor(command="view", path=f"/workspace/{name}/canary.txt"),
            await editor(command="view", path=f"/workspace/{name}"),
            await editor(
                command="create", path=f"/workspace/{name}/edited-{rounds}.txt", file_text="e"
            ),
            await editor(
                command="str_replace",
                path=f"/workspace/{name}/canary.txt",
                old_str="inside",
                new_str="inside",
            ),
        ):
            assert not _leaks(result.content.encode()), result.content
    return rounds


@pytest.mark.timeout(150)  # 20 s of attack, with room for a loaded machine
async def test_swap_loop_reaches_nothing_outside(tmp_path: Path, outside: Path) -> None:
    settings = make_settings(tmp_path, runtime="sandbox")
    async with serve(settings) as server:
        cid = await server.manager.create(None, NewConversation())
        upload = await server.client.post(
            f"/api/conversations/{cid}/upload-files",
            files=[
                ("files", ("real/canary.txt", b"inside", "text/plain")),
                ("files", ("real/AGENTS.md", b"inside", "text/plain")),
                ("files", ("real/.openhands/microagents/ok.md", b"inside", "text/plain")),
            ],
        )
        assert len(upload.json()["uploaded_files"]) == 3
        workspace = server.manager.workspace_path(cid)
        agent = BwrapSandboxFactory().create(SandboxSpec(cid, workspace))
        made = await agent.exec(["ln", "-s", str(outside), "/workspace/link"])
        assert made.exit_code == 0, made.stderr
        editor = FileEditor(agent)

        before = _tree(outside)
        started = time.monotonic()
        swapping = asyncio.create_task(
            agent.exec(
                ["python3", "-c", SWAPPER, "/workspace/real", "/workspace/link", str(SWAP_SECONDS)],
                timeout=SWAP_SECONDS + 30,
            )
        )
        requests, edits, reads = await asyncio.gather(
            _attack_routes(server, cid, swapping),
            _attack_editor(editor, swapping),
            _attack_instructions(agent.workspace, swapping),
        )
        swapped = await swapping
        elapsed = time.monotonic() - started

    assert swapped.exit_code == 0, swapped.stderr
    swaps = int(swapped.stdout)
    print(
        f"\n{swaps} swaps, {requests} route rounds, {edits} editor rounds, {reads} instruction "
        f"reads in {elapsed:.1f} s"
    )
    assert elapsed >= SWAP_SECONDS and swaps > 10_000
    assert requests > 20 and edits > 20 and reads > 20
    assert _tree(outside) == before  # nothing written there
    assert (outside / "canary.txt").read_bytes() == CANARY
    inside = [p for p in workspace.rglob("dropped-*.txt") if not p.is_symlink()]
    assert inside, "no upload landed inside the workspace either"
    owners = {p.stat().st_uid for p in inside}
    assert owners == {65534 if os.geteuid() == 0 else os.geteuid()}
