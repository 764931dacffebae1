"""Git status and diffs of a conversation's workspace, for the web client's changes panel.

A repository is the workspace itself, or (when the workspace is not one) each directory
directly inside it that is one, as when a repository was cloned into the workspace. Paths
are reported relative to the workspace. Git runs as a subprocess with a timeout.

Git runs here on the host, outside the sandbox, in a repository the agent can write to: its
``.git/config`` must not be able to make git run a command. Every such setting git status and
git show consult is overridden on the command line (``core.fsmonitor``, the filter and diff
drivers the configuration names, submodules, hooks), and no transport may run (a partial
clone would otherwise fetch a missing object through a configured command).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from convo.services.workspace_files import WorkspaceFileError, relative_name, resolve_inside

GIT_TIMEOUT_SECONDS = 30.0
_HARDENED = (
    "-c",
    "core.quotepath=off",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "submodule.recurse=false",
    "-c",
    "diff.ignoreSubmodules=all",
)
# driver settings whose value is a command: emptied for every driver the config names
_DRIVER_COMMANDS = {"filter": ("clean", "smudge", "process"), "diff": ("textconv", "command")}


class NotAGitRepository(WorkspaceFileError):
    def __init__(self) -> None:
        super().__init__("Not a git repository")


class GitFailed(WorkspaceFileError):
    pass


@dataclass(frozen=True)
class Repository:
    path: Path
    prefix: str  # "" for the workspace itself, else "name/"


async def _git(repo: Path, *args: str) -> tuple[int, bytes]:
    """Run git in ``repo`` with every command its configuration names disabled."""
    code, names = await _run(
        repo, "config", "-z", "--name-only", "--get-regexp", r"^(filter|diff)\."
    )
    overrides: list[str] = list(_HARDENED)
    for name in names.decode("utf-8", "replace").split("\0") if code == 0 else ():
        section, _, rest = name.partition(".")
        driver, _, key = rest.rpartition(".")
        if driver and key in _DRIVER_COMMANDS.get(section, ()):
            overrides += ["-c", f"{section}.{driver}.{key}="]
            if section == "filter":
                overrides += ["-c", f"filter.{driver}.required=false"]
    return await _run(repo, *overrides, *args)


async def _run(repo: Path, *args: str) -> tuple[int, bytes]:
    process = await asyncio.create_subprocess_exec(
        "git",
        "-C",
        str(repo),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        # no transport at all, whatever the repository's protocol.*.allow says
        env={**os.environ, "GIT_ALLOW_PROTOCOL": "", "GIT_TERMINAL_PROMPT": "0"},
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), GIT_TIMEOUT_SECONDS)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out


def find_repositories(root: Path) -> list[Repository]:
    resolved = root.resolve()
    if (resolved / ".git").exists():
        return [Repository(resolved, "")]
    if not resolved.is_dir():
        return []
    return [
        Repository(child, child.name + "/")
        for child in sorted(resolved.iterdir())
        if child.is_dir() and (child / ".git").exists()
    ]


def _status_letter(code: str) -> str:
    if code == "??" or "A" in code:
        return "A"
    if "U" in code:
        return "U"
    if "D" in code:
        return "D"
    if "R" in code:
        return "R"
    return "M"


def parse_porcelain(output: bytes, prefix: str = "") -> list[dict[str, str]]:
    """``git status --porcelain=v1 -z`` output → ``[{status, path}]``."""
    changes: list[dict[str, str]] = []
    parts = output.decode("utf-8", "replace").split("\0")
    index = 0
    while index < len(parts):
        entry = parts[index]
        index += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if "R" in code or "C" in code:
            index += 1  # the original name follows a rename or copy
        changes.append({"status": _status_letter(code), "path": prefix + path})
    return changes


async def git_changes(root: Path) -> list[dict[str, str]]:
    repositories = await asyncio.to_thread(find_repositories, root)
    if not repositories:
        raise NotAGitRepository()
    changes: list[dict[str, str]] = []
    for repo in repositories:
        code, out = await _git(
            repo.path,
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignore-submodules=all",
        )
        if code != 0:
            raise GitFailed(f"git status failed in {repo.prefix or 'the workspace'}")
        changes.extend(parse_porcelain(out, repo.prefix))
    return changes


def _read_if_file(path: Path) -> str:
    if not path.is_file():
        return ""
    return path.read_bytes().decode("utf-8", "replace")


async def git_diff(root: Path, path: str) -> dict[str, str]:
    """``{original, modified}``: the file at HEAD (empty if new) and now (empty if deleted)."""
    host = await asyncio.to_thread(resolve_inside, root, path)
    repositories = await asyncio.to_thread(find_repositories, root)
    repo = next(
        (r for r in repositories if host == r.path or r.path in host.parents),
        None,
    )
    if repo is None:
        raise NotAGitRepository()
    inside = relative_name(repo.path, host)
    code, original = await _git(repo.path, "show", f"HEAD:{inside}")
    modified = await asyncio.to_thread(_read_if_file, host)
    return {
        "original": original.decode("utf-8", "replace") if code == 0 else "",
        "modified": modified,
    }
