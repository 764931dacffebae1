"""git/changes and git/diff on repositories the agent made and booby-trapped.

The agent (here: commands run with its rights, inside a sandbox over its workspace) makes a
repository and plants every git setting that names a program - fsmonitor, hooks, clean and
smudge filters, textconv, a pager, gpg.program with log.showSignature on a signed commit,
an included config file - each program writing a marker into a host directory outside the
sandbox. It also points core.worktree at a host directory and links a host repository into
the workspace. The routes answer, no marker ever appears on the host, and no name or
content from outside the workspace comes back.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from convo.runtime.base import SandboxSpec
from convo.runtime.bwrap import BwrapSandbox, BwrapSandboxFactory
from convo.services.conversations import NewConversation
from tests.api.conftest import make_settings, serve

HOST_SECRET = "HOST-REPOSITORY-SECRET"
HOOKS = ("fsmonitor", "clean", "smudge", "textconv", "pager", "gpg", "include")

MAKE_REPOSITORY = """
set -e
git() { command git -c user.name=agent -c user.email=agent@example.invalid "$@"; }
git init -q project && cd project
printf 'one\\n' > a.txt && printf 'keep\\n' > b.txt
git add . && git commit -q -m first
tree=$(git write-tree)
parent=$(git rev-parse HEAD)
signed=$(printf 'tree %s\\nparent %s\\nauthor a <a@a> 0 +0000\\ncommitter a <a@a> 0 +0000\\n\
gpgsig -----BEGIN PGP SIGNATURE-----\\n \\n -----END PGP SIGNATURE-----\\n\\nsigned\\n' \
"$tree" "$parent" | git hash-object -t commit -w --stdin)
git update-ref HEAD "$signed"
printf 'owt\\n' > a.txt
printf 'fresh\\n' > new.txt
rm b.txt
"""


def _payload(markers: Path, name: str) -> str:
    """A command that marks the host if it runs there, and the workspace if it runs in the
    sandbox; it passes its input through (a filter must)."""
    host = shlex.quote(str(markers / name))
    return f"sh -c 'touch {host} 2>/dev/null; echo {name} >> /workspace/ran.log; cat'"


def _planted_config(markers: Path, outside: Path) -> str:
    run = {name: _payload(markers, name) for name in HOOKS}
    return (
        f'[core]\n\tfsmonitor = "{run["fsmonitor"]}"\n\tpager = "{run["pager"]}"\n'
        f"\tworktree = {outside}\n\thooksPath = .git/hooks\n"
        f'[filter "evil"]\n\tclean = "{run["clean"]}"\n\tsmudge = "{run["smudge"]}"\n'
        "\trequired = true\n"
        f'[diff "evil"]\n\ttextconv = "{run["textconv"]}"\n'
        f'[gpg]\n\tprogram = "{run["gpg"]}"\n[log]\n\tshowSignature = true\n'
        "[include]\n\tpath = ../../extra.cfg\n"
    )


async def _agent(box: BwrapSandbox, script: str) -> None:
    result = await box.exec(["bash", "-c", script], timeout=60)
    assert result.exit_code == 0, result.stderr.decode()


@pytest.fixture
def host(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(markers, a host directory core.worktree names, a host repository)."""
    markers, outside, repo = tmp_path / "markers", tmp_path / "outside", tmp_path / "hostrepo"
    markers.mkdir()
    markers.chmod(0o777)  # writable by anyone: only a program that runs on the host matters
    outside.mkdir()
    (outside / f"{HOST_SECRET}.txt").write_text(HOST_SECRET)
    repo.mkdir()
    (repo / "tracked.txt").write_text(HOST_SECRET)
    (repo / f"{HOST_SECRET}-untracked.txt").write_text(HOST_SECRET)
    return markers, outside, repo


async def test_planted_git_configuration_runs_nothing_on_the_host(
    tmp_path: Path, host: tuple[Path, Path, Path]
) -> None:
    markers, outside, host_repo = host
    settings = make_settings(tmp_path, runtime="sandbox")
    async with serve(settings) as server:
        cid = await server.manager.create(None, NewConversation())
        base = f"/api/conversations/{cid}"
        workspace = server.manager.workspace_path(cid)
        workspace.mkdir(parents=True)
        box = BwrapSandboxFactory().create(SandboxSpec(cid, workspace))
        if os.geteuid() == 0:
            os.chown(workspace, 65534, 65534)
        await _agent(box, MAKE_REPOSITORY)

        # an untouched repository the agent made: git/changes works (no dubious ownership)
        clean = await server.client.get(f"{base}/git/changes")
        assert clean.status_code == 200, clean.text
        assert sorted(c["path"] for c in clean.json()) == [
            "project/a.txt",
            "project/b.txt",
            "project/new.txt",
        ]

        hooks = "\n".join(
            f"printf '#!/bin/sh\\n{_payload(markers, 'hook')}\\n' > project/.git/hooks/{name} && "
            f"chmod +x project/.git/hooks/{name}"
            for name in (
                "post-index-change",
                "post-checkout",
                "pre-commit",
                "reference-transaction",
            )
        )
        config = _planted_config(markers, outside)
        extra = f'[core]\n\tfsmonitor = "{_payload(markers, "include")}"\n'
        await _agent(
            box,
            f"cat >> project/.git/config <<'EOF'\n{config}EOF\n"
            f"cat > extra.cfg <<'EOF'\n{extra}EOF\n"
            "printf '* filter=evil diff=evil\\n' > project/.gitattributes\n"
            f"{hooks}\n"
            f"ln -s {shlex.quote(str(host_repo))} hostrepo\n",
        )
        init = subprocess.run(["git", "init", "-q", str(host_repo)], check=False)
        assert init.returncode == 0  # a host repository, linked from the workspace

        changes = await server.client.get(f"{base}/git/changes")
        assert changes.status_code == 200, changes.text
        paths = sorted(c["path"] for c in changes.json())
        assert "project/a.txt" in paths and "project/new.txt" in paths
        assert all(p.startswith("project/") for p in paths), paths
        for path in ("project/a.txt", "project/new.txt", "project/b.txt"):
            diff = await server.client.get(f"{base}/git/diff", params={"path": path})
            assert diff.status_code == 200, diff.text
        diff = (
            await server.client.get(f"{base}/git/diff", params={"path": "project/a.txt"})
        ).json()
        assert diff["modified"] == "owt\n"
        for probe in ("hostrepo/tracked.txt", "project/../hostrepo/tracked.txt"):
            answer = await server.client.get(f"{base}/git/diff", params={"path": probe})
            assert HOST_SECRET not in answer.text, probe
        listed = await server.client.get(f"{base}/list-files", params={"path": "hostrepo"})
        assert HOST_SECRET not in listed.text and listed.status_code == 403

        everything = changes.text + diff["original"] + diff["modified"]
        assert HOST_SECRET not in everything
        assert sorted(os.listdir(markers)) == [], "a planted program ran on the host"
        ran = (
            (workspace / "ran.log").read_text().split() if (workspace / "ran.log").exists() else []
        )
        print(f"\nplanted programs that ran inside the sandbox: {sorted(set(ran))}")
        assert ran, "git read none of the planted configuration: the test proves nothing"
