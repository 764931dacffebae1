"""Git status and diffs of a conversation's workspace, for the web client's changes panel.

A repository is the workspace itself, or (when the workspace is not one) each directory
directly inside it that is one (not a symlink), as when a repository was cloned into the
workspace. Paths are reported relative to the workspace.

The repositories are the agent's: their ``.git/config``, hooks, attributes and gitlinks
are written by an adversary. So git never runs on the host here: it runs through
``Sandbox.exec``, with the sandbox's confinement and unprivileged uid (under bubblewrap a
short-lived sandbox of its own over the same workspace, whether or not the conversation
runs), a fixed minimal environment and no network. Whatever the configuration makes git
run (fsmonitor, filters, textconv, pager, gpg.program) runs there, with the agent's own
rights. ``--git-dir`` and ``--work-tree`` are explicit, so ``core.worktree`` cannot move
the work tree, and ``safe.directory=*`` lets git read a repository owned by another uid
(inside the sandbox that protects nothing: the agent owns everything it can see).
The current file content of a diff is read descriptor-relative (``Sandbox.workspace``).
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass

from convo.errors import PathOutsideWorkspace, SandboxError, SandboxUnavailable
from convo.runtime.base import ExecResult, Sandbox
from convo.runtime.workspace import Workspace
from convo.services.workspace_files import (
    MAX_READ_BYTES,
    WorkspaceFileError,
    client_path,
    translate,
)

GIT_TIMEOUT_SECONDS = 30.0
_GIT = (
    "git",
    "--no-pager",
    "--git-dir=.git",
    "--work-tree=.",
    "-c",
    "safe.directory=*",
    "-c",
    "core.quotepath=off",
)
_ENV = {
    "GIT_OPTIONAL_LOCKS": "0",  # status does not rewrite the index
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ALLOW_PROTOCOL": "",  # no fetch of a missing object from a partial clone
    "GIT_CONFIG_NOSYSTEM": "1",
}


class NotAGitRepository(WorkspaceFileError):
    def __init__(self) -> None:
        super().__init__("Not a git repository")


class GitFailed(WorkspaceFileError):
    pass


class GitUnavailable(GitFailed):
    """The sandbox git would run in cannot start on this machine."""


@dataclass(frozen=True)
class Repository:
    prefix: str  # "" for the workspace itself, else "name/"


async def _git(sandbox: Sandbox, repo: Repository, *args: str) -> ExecResult:
    try:
        return await sandbox.exec(
            [*_GIT, *args],
            cwd=repo.prefix,
            env=_ENV,
            timeout=GIT_TIMEOUT_SECONDS,
            max_output_bytes=2 * MAX_READ_BYTES,
        )
    except SandboxUnavailable as exc:
        raise GitUnavailable(f"git could not run in the sandbox: {exc}") from exc
    except SandboxError as exc:
        raise GitFailed(f"git could not run in the sandbox: {exc}") from exc


def _has_git(workspace: Workspace, directory: str) -> bool:
    try:
        return workspace.lexists(f"{directory}.git")
    except (OSError, PathOutsideWorkspace):  # the agent swapped the directory meanwhile
        return False


def find_repositories(workspace: Workspace) -> list[Repository]:
    if _has_git(workspace, ""):
        return [Repository("")]
    return [
        Repository(f"{entry.name}/")
        for entry in workspace.list_dir("")
        if entry.is_dir and _has_git(workspace, f"{entry.name}/")
    ]


_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree


async def _output(sandbox: Sandbox, repo: Repository, *args: str) -> str | None:
    """A git command's first line of output, or None when it fails."""
    result = await _git(sandbox, repo, *args)
    if result.exit_code != 0:
        return None
    lines = result.stdout.decode("utf-8", "replace").strip().splitlines()
    return lines[0].strip() if lines else None


async def base_ref(sandbox: Sandbox, repo: Repository) -> str:
    """What the changes are measured against, as OpenHands does: the remote branch of the
    current one, else the merge base with the remote's default branch, else that branch;
    without a remote, HEAD (or the empty tree before the first commit). Read from the refs
    the clone has: nothing is fetched."""
    branch = await _output(sandbox, repo, "rev-parse", "--abbrev-ref", "HEAD")
    default = await _output(sandbox, repo, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD")
    candidates: list[str] = []
    if branch and branch != "HEAD":
        candidates.append(f"refs/remotes/origin/{branch}")
    if default:
        merge_base = await _output(sandbox, repo, "merge-base", "HEAD", default)
        candidates += [merge_base or "", default]
    candidates += ["HEAD", _EMPTY_TREE]
    for ref in filter(None, candidates):
        commit = await _output(sandbox, repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{tree}}")
        if commit:
            return ref
    return _EMPTY_TREE


def parse_name_status(output: bytes, prefix: str = "") -> list[dict[str, str]]:
    """``git diff --name-status -z`` output → ``[{status, path}]`` (a rename: its new path)."""
    changes: list[dict[str, str]] = []
    parts = output.decode("utf-8", "replace").split("\0")
    index = 0
    while index + 1 < len(parts):
        code, path = parts[index], parts[index + 1]
        index += 2
        if code[:1] in ("R", "C") and index < len(parts):
            path = parts[index]  # the new name follows the old one
            index += 1
        if code:
            letter = code[:1] if code[:1] in ("A", "D", "M", "R", "U") else "M"
            changes.append({"status": letter, "path": prefix + path})
    return changes


async def _checked(sandbox: Sandbox, repo: Repository, *args: str) -> bytes:
    result = await _git(sandbox, repo, *args)
    if result.exit_code != 0:
        where = repo.prefix or "the workspace"
        detail = "timed out" if result.timed_out else "failed"
        reason = result.stderr.decode("utf-8", "replace").strip()[-300:]
        raise GitFailed(f"git {args[0]} {detail} in {where}: {reason}")
    return result.stdout


async def git_changes(sandbox: Sandbox) -> list[dict[str, str]]:
    """Every file that differs from ``base_ref`` (commits not pushed included), and the
    untracked ones as added, as OpenHands' changes panel lists them."""
    repositories = await asyncio.to_thread(find_repositories, sandbox.workspace)
    if not repositories:
        raise NotAGitRepository()
    changes: list[dict[str, str]] = []
    for repo in repositories:
        ref = await base_ref(sandbox, repo)
        tracked = await _checked(
            sandbox,
            repo,
            "diff",
            "--name-status",
            "-z",
            "--no-renames",
            "--ignore-submodules=all",
            ref,
        )
        changes.extend(parse_name_status(tracked, repo.prefix))
        untracked = await _checked(
            sandbox, repo, "ls-files", "--others", "--exclude-standard", "-z"
        )
        changes.extend(
            {"status": "A", "path": repo.prefix + name}
            for name in untracked.decode("utf-8", "replace").split("\0")
            if name
        )
    return changes


def _current(workspace: Workspace, path: str) -> str:
    try:
        data = workspace.read_bytes(path, MAX_READ_BYTES)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EINVAL):
            return ""  # deleted, or not a file
        raise translate(exc, path) from exc
    return data[:MAX_READ_BYTES].decode("utf-8", "replace")


async def git_diff(sandbox: Sandbox, path: str) -> dict[str, str]:
    """``{original, modified}``: the file at ``base_ref`` (empty if new there) and now
    (empty if deleted)."""
    workspace = sandbox.workspace
    parts = workspace.parts(client_path(path))  # lexical: git/changes names no symlinks
    repositories = await asyncio.to_thread(find_repositories, workspace)
    repo = next(
        (r for r in repositories if not r.prefix or (parts and parts[0] + "/" == r.prefix)),
        None,
    )
    if repo is None or not parts:
        raise NotAGitRepository()
    inside = "/".join(parts[1:] if repo.prefix else parts)
    ref = await base_ref(sandbox, repo)
    original = await _git(sandbox, repo, "show", "--no-textconv", f"{ref}:{inside}")
    modified = await asyncio.to_thread(_current, workspace, "/".join(parts))
    return {
        "original": original.stdout.decode("utf-8", "replace") if original.exit_code == 0 else "",
        "modified": modified,
    }
