"""The changes panel runs git on the host, outside the sandbox, in a repository the agent
controls: nothing in that repository's configuration may make it run a command."""

from __future__ import annotations

import asyncio
from pathlib import Path

from convo.services.git_workspace import git_changes, git_diff


async def _git(cwd: Path, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert await process.wait() == 0, args


async def _planted_repository(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose config names commands, as an agent in the sandbox could write it."""
    workspace = tmp_path / "workspace"
    repo = workspace / "project"
    repo.mkdir(parents=True)
    marker = tmp_path / "escaped"
    hook = tmp_path / "payload.sh"
    hook.write_text(f"#!/bin/sh\necho ran >> {marker}\ncat\n")
    hook.chmod(0o755)
    await _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    (repo / ".gitattributes").write_text("*.txt filter=evil diff=evil\n")
    await _git(repo, "add", ".")
    await _git(repo, "commit", "-q", "-m", "init")
    with (repo / ".git" / "config").open("a") as config:
        config.write(
            f"[core]\n\tfsmonitor = {hook}\n"
            f'[filter "evil"]\n\tclean = {hook}\n\tsmudge = {hook}\n\trequired = true\n'
            f'[diff "evil"]\n\ttextconv = {hook}\n'
        )
    (repo / "a.txt").write_text("owt\n")  # the same size: git status must hash it (cleaned)
    return workspace, marker


async def test_git_changes_runs_nothing_from_the_repository_config(tmp_path: Path) -> None:
    workspace, marker = await _planted_repository(tmp_path)
    changes = await git_changes(workspace)
    assert {"status": "M", "path": "project/a.txt"} in changes
    assert not marker.exists(), "git status ran a command named in the agent's repository"


async def test_git_diff_runs_nothing_from_the_repository_config(tmp_path: Path) -> None:
    workspace, marker = await _planted_repository(tmp_path)
    diff = await git_diff(workspace, "project/a.txt")
    assert diff == {"original": "one\n", "modified": "owt\n"}
    assert not marker.exists(), "git ran a command named in the agent's repository"
