"""The quota's measurement walks the workspace by descriptors: symlinks (also ones swapped in
for a directory while it walks) never lead it outside, and a tree too deep to walk with a
bounded number of descriptors counts as over the quota. The processes whose open files it
counts are found from the shell's own tree, as a scan of every process finds them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from convo.errors import WorkspaceQuotaExceeded
from convo.runtime.quota import _descendants, _descendants_from_stat, disk_usage

MIB = 2**20


def _fill(path: Path, mib: int) -> None:
    path.write_bytes(os.urandom(mib * MIB))


def test_files_are_counted_and_hard_links_once(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "a" / "b").mkdir(parents=True)
    _fill(workspace / "a" / "b" / "one", 2)
    os.link(workspace / "a" / "b" / "one", workspace / "twice")
    used = disk_usage(workspace)
    assert 2 * MIB <= used < 3 * MIB


def test_a_symlink_to_a_folder_outside_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    _fill(outside / "big", 8)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "link").symlink_to(outside)
    assert disk_usage(workspace) < MIB


def test_a_directory_swapped_for_a_symlink_mid_walk_never_leads_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    _fill(outside / "big", 16)
    workspace = tmp_path / "ws"
    (workspace / "d").mkdir(parents=True)
    for i in range(2000):  # many entries: time passes between seeing "d" and entering it
        (workspace / f"f{i}").write_bytes(b"x")
    (workspace / "swap").symlink_to(outside)
    # another process swaps "d" and the symlink as fast as it can, for at most 20 s
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAP_LOOP, str(workspace)], stdout=subprocess.DEVNULL
    )
    try:
        for _ in range(300):
            assert disk_usage(workspace) < 8 * MIB
    finally:
        swapper.kill()
        swapper.wait()


SWAP_LOOP = """
import os, sys, time
w = sys.argv[1]
end = time.monotonic() + 20
while time.monotonic() < end:
    os.rename(f"{w}/d", f"{w}/tmp")
    os.rename(f"{w}/swap", f"{w}/d")
    os.rename(f"{w}/d", f"{w}/swap")
    os.rename(f"{w}/tmp", f"{w}/d")
"""


def test_a_tree_too_deep_to_walk_counts_as_over_the_quota(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(600):  # deeper than a path name may be long, built relative
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    with pytest.raises(WorkspaceQuotaExceeded, match="levels deep"):
        disk_usage(workspace)


def test_empty_files_count_as_inodes(tmp_path: Path) -> None:
    """Files that allocate no block still take an inode each: a workspace of 5,000 empty
    files counts at least 4 KiB for each, so creating them without end hits the quota."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    for i in range(5000):
        (workspace / f"e{i}").touch()
    assert disk_usage(workspace) >= 5000 * 4096


_TREE = """
import subprocess, threading, time
subprocess.Popen(["bash", "-c", "sleep 60 & (sleep 60 & wait) & wait"])
threading.Thread(target=subprocess.run, args=(["sleep", "60"],), daemon=True).start()
print("ready", flush=True)
time.sleep(60)
"""


def test_the_process_tree_is_found_without_scanning_every_process() -> None:
    """Children of the root, of its children, and of a thread other than the main one."""
    root = subprocess.Popen(
        [sys.executable, "-c", _TREE], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert root.stdout is not None and root.stdout.readline() == b"ready\n"
        proc = Path("/proc")
        for _ in range(100):  # until bash has started its sleeps
            found = sorted(_descendants(root.pid, proc))
            if len(found) >= 6:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert len(found) == 6  # python, bash, sleep, the subshell and its sleep, sleep
        assert found == sorted(_descendants_from_stat(root.pid, proc))
    finally:
        os.killpg(root.pid, 9)
        root.wait()
        if root.stdout is not None:
            root.stdout.close()
