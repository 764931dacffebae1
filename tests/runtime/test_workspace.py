"""Workspace: the one resolver of workspace paths, descriptor-relative and no-follow."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from convo.errors import PathOutsideWorkspace
from convo.runtime.workspace import NotRegularFile, Workspace
from convo.runtime.workspace_walk import MAX_DEPTH, WorkspaceChanged
from tests.security.swap import start_swapping, swap_count

SECRET = b"host secret, never to be read"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    return folder


def test_paths_are_named_as_the_agent_names_them(root: Path, outside: Path) -> None:
    workspace = Workspace(root, agent_root="/workspace")
    (root / "real").mkdir()
    os.symlink("/workspace/real", root / "abs")
    os.symlink("real", root / "rel")
    os.symlink(outside, root / "out")
    os.symlink("../..", root / "up")
    os.symlink("loop", root / "loop")
    assert workspace.resolve("/workspace/real/f") == "real/f"
    assert workspace.resolve("abs/f") == "real/f"
    assert workspace.resolve("rel/../rel/f") == "real/f"
    assert workspace.resolve("new/dir/f") == "new/dir/f"  # not there yet: kept as named
    assert workspace.resolve("/workspace") == ""
    for bad in ("/etc/passwd", "../x", "out/secret.txt", "up/x", "loop", str(root), "a\0b"):
        with pytest.raises(PathOutsideWorkspace):
            workspace.resolve(bad)
    with pytest.raises(PathOutsideWorkspace):
        workspace.read_bytes("out/secret.txt", 100)
    with pytest.raises(PathOutsideWorkspace):
        workspace.write("out/secret.txt", b"overwritten")
    assert (outside / "secret.txt").read_bytes() == SECRET


def test_reads_and_writes_only_regular_files(root: Path) -> None:
    workspace = Workspace(root, agent_root="/workspace")
    os.mkfifo(root / "fifo")
    with pytest.raises(NotRegularFile):
        workspace.read_bytes("fifo", 10)  # and it did not block waiting for a writer
    with pytest.raises(NotRegularFile):
        workspace.write("fifo", b"x")
    (root / "one").write_bytes(b"1")
    os.link(root / "one", root / "two")
    with pytest.raises(PermissionError):
        workspace.write("two", b"changed")  # a hard link may lead anywhere
    assert (root / "one").read_bytes() == b"1"
    with pytest.raises(IsADirectoryError):
        workspace.read_bytes("", 10)
    assert workspace.write("d/e/f.txt", b"made") == "d/e/f.txt"
    assert workspace.read_bytes("/workspace/d/e/f.txt", 100) == b"made"
    assert workspace.kind("d") == "dir" and workspace.kind("fifo") == "other"
    assert workspace.kind("nope/x") == "missing"


def test_whole_tree_walks_skip_symlinks_and_fifos(root: Path, outside: Path) -> None:
    workspace = Workspace(root, agent_root="/workspace")
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "c.txt").write_bytes(b"c")
    (root / "top.txt").write_bytes(b"t")
    os.symlink(outside, root / "a" / "out")
    os.symlink(outside / "secret.txt", root / "secret.txt")
    os.mkfifo(root / "fifo")
    names = {name: handle.read() for name, handle in workspace.files()}
    assert names == {"a/b/c.txt": b"c", "top.txt": b"t"}
    tree = [(e.name, e.is_dir) for e in workspace.tree("", 2)]
    assert tree == [
        ("a", True),
        ("a/b", True),
        ("a/out", False),
        ("fifo", False),
        ("secret.txt", False),
        ("top.txt", False),
    ]


def test_a_deep_tree_is_walked_to_a_bound(root: Path) -> None:
    workspace = Workspace(root, agent_root="/workspace")
    deep = "/".join(["d"] * (MAX_DEPTH + 20))
    workspace.write(f"{deep}/bottom.txt", b"x")
    workspace.write("shallow.txt", b"y")
    assert [name for name, _ in workspace.files()] == ["shallow.txt"]


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_created_entries_get_the_sandbox_owner_and_chown_follows_nothing(
    root: Path, outside: Path
) -> None:
    workspace = Workspace(root / "new", agent_root="/workspace", owner=(12345, 12346))
    workspace.ensure_root()
    workspace.write("dir/file.txt", b"x")
    for made in ("", "dir", "dir/file.txt"):
        info = (workspace.root / made).stat()
        assert (info.st_uid, info.st_gid) == (12345, 12346), made
    os.symlink(outside / "secret.txt", workspace.root / "link")
    os.symlink(outside, workspace.root / "dir" / "folder")
    (workspace.root / "mine.txt").write_bytes(b"root's")
    workspace.chown_tree(23456, 23456)
    assert (workspace.root / "mine.txt").stat().st_uid == 23456
    assert os.lstat(workspace.root / "link").st_uid == 23456  # the link itself
    assert (outside / "secret.txt").stat().st_uid == os.geteuid()
    assert outside.stat().st_uid == os.geteuid()


async def test_a_swap_loop_never_leads_outside(root: Path, outside: Path) -> None:
    """A directory and a symlink to outside exchanged in a loop while the workspace is read
    and written through the swapped name: only inside content, never outside."""
    workspace = Workspace(root, agent_root="/workspace")
    (root / "real").mkdir()
    (root / "real" / "secret.txt").write_bytes(b"inside")
    os.symlink(outside, root / "link")
    swapper = await start_swapping(root / "real", root / "link", 3.0)
    seen: set[bytes] = set()

    def attack() -> None:
        for _ in range(20_000):
            for name in ("real/secret.txt", "link/secret.txt"):
                try:
                    seen.add(workspace.read_bytes(name, 100))
                    workspace.write(name.replace("secret", "dropped"), b"written")
                except (PathOutsideWorkspace, WorkspaceChanged, OSError):
                    pass
            if swapper.returncode is not None:
                return

    await asyncio.to_thread(attack)
    swaps = await swap_count(swapper)
    assert swaps > 1000
    assert seen <= {b"inside"} and seen
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
