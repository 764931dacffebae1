"""Workspace file routes: list-files, select-file, zip-directory, upload-files, git."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

from convo.api.app import Overrides
from convo.errors import SandboxUnavailable
from convo.runtime.base import ExecResult, SandboxSpec
from convo.runtime.fake import FakeSandbox
from convo.services.conversations import NewConversation
from tests.api.conftest import RunningServer, ServeFactory
from tests.stream.helpers import FakeSandboxFactory

UNKNOWN = "0123456789abcdef0123456789abcdef"


def _overrides() -> Overrides:
    return Overrides(sandbox_factory=FakeSandboxFactory())


async def _conversation(server: RunningServer, files: dict[str, bytes] | None = None) -> str:
    cid: str = await server.manager.create(None, NewConversation())
    if files is not None:
        root: Path = server.manager.workspace_path(cid)
        root.mkdir(parents=True)
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
    return cid


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


async def test_list_and_select_files(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        files = {
            "b.txt": b"bee\n",
            "A.md": b"# a\n",
            "src/main.py": b"print(1)\n",
            "img.bin": b"\x89PNG\x00\x01",
            ".git/HEAD": b"ref",
        }
        cid = await _conversation(server, files)
        base = f"/api/conversations/{cid}"
        listing = await server.client.get(f"{base}/list-files")
        assert listing.json() == ["src/", "A.md", "b.txt", "img.bin"]
        nested = await server.client.get(f"{base}/list-files", params={"path": "src"})
        assert nested.json() == ["src/main.py"]
        missing = await server.client.get(f"{base}/list-files", params={"path": "nope"})
        assert missing.status_code == 200 and missing.json() == []  # as OpenHands answers
        escape = await server.client.get(f"{base}/list-files", params={"path": "../.."})
        assert escape.status_code == 403

        shown = await server.client.get(f"{base}/select-file", params={"file": "src/main.py"})
        assert shown.json() == {"code": "print(1)\n"}
        absolute = await server.client.get(
            f"{base}/select-file", params={"file": "/workspace/b.txt"}
        )
        assert absolute.json() == {"code": "bee\n"}
        binary = await server.client.get(f"{base}/select-file", params={"file": "img.bin"})
        assert binary.status_code == 415 and "binary" in binary.json()["error"]
        missing = await server.client.get(f"{base}/select-file", params={"file": "gone.txt"})
        assert missing.status_code == 404
        for bad in ("../../etc/passwd", "/etc/passwd"):
            refused = await server.client.get(f"{base}/select-file", params={"file": bad})
            assert refused.status_code == 403, bad
        assert (await server.client.get(f"{base}/select-file")).status_code == 422


async def test_routes_before_the_workspace_exists_and_for_unknown_conversations(
    server_factory: ServeFactory,
) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _conversation(server)
        for path in ("list-files", "zip-directory", "git/changes"):
            response = await server.client.get(f"/api/conversations/{cid}/{path}")
            assert response.status_code == 404, path
            assert "does not exist yet" in response.json()["error"]
            unknown = await server.client.get(f"/api/conversations/{UNKNOWN}/{path}")
            assert unknown.status_code == 404
        shown = await server.client.get(
            f"/api/conversations/{cid}/select-file", params={"file": "a"}
        )
        assert shown.status_code == 404


async def test_zip_directory(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _conversation(server, {"a.txt": b"alpha", "deep/b.txt": b"beta"})
        response = await server.client.get(f"/api/conversations/{cid}/zip-directory")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            assert sorted(archive.namelist()) == ["a.txt", "deep/b.txt"]
            assert archive.read("deep/b.txt") == b"beta"


async def test_upload_files(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _conversation(server)  # no workspace yet: an upload creates it
        files = [
            ("files", ("notes.txt", b"hello", "text/plain")),
            ("files", ("dir/data.csv", b"1,2", "text/csv")),
            ("files", ("../escape.txt", b"nope", "text/plain")),
            ("files", ("/etc/evil", b"nope", "text/plain")),
        ]
        response = await server.client.post(f"/api/conversations/{cid}/upload-files", files=files)
        assert response.status_code == 200
        body = response.json()
        assert body["uploaded_files"] == ["notes.txt", "dir/data.csv"]
        assert [s["name"] for s in body["skipped_files"]] == ["../escape.txt", "/etc/evil"]
        root = server.manager.workspace_path(cid)
        assert (root / "notes.txt").read_bytes() == b"hello"
        assert not (root.parent / "escape.txt").exists()
        none = await server.client.post(f"/api/conversations/{cid}/upload-files")
        assert none.status_code == 422
        unknown = await server.client.post(
            f"/api/conversations/{UNKNOWN}/upload-files", files=files[:1]
        )
        assert unknown.status_code == 404


async def test_git_changes_and_diff(server_factory: ServeFactory) -> None:
    async with server_factory(_overrides()) as server:
        cid = await _conversation(server, {"keep.txt": b"one\n", "gone.txt": b"bye\n"})
        base = f"/api/conversations/{cid}"
        not_git = await server.client.get(f"{base}/git/changes")
        assert not_git.status_code == 404 and not_git.json()["error"] == "Not a git repository"
        diff_none = await server.client.get(f"{base}/git/diff", params={"path": "keep.txt"})
        assert diff_none.status_code == 404

        root = server.manager.workspace_path(cid)
        await _git(root, "init", "-q")
        await _git(root, "add", ".")
        await _git(root, "commit", "-q", "-m", "first")
        assert (await server.client.get(f"{base}/git/changes")).json() == []
        (root / "keep.txt").write_text("two\n")
        (root / "gone.txt").unlink()
        (root / "new.txt").write_text("fresh\n")
        changes = (await server.client.get(f"{base}/git/changes")).json()
        assert sorted(changes, key=lambda c: c["path"]) == [
            {"status": "D", "path": "gone.txt"},
            {"status": "M", "path": "keep.txt"},
            {"status": "A", "path": "new.txt"},
        ]
        diff = (await server.client.get(f"{base}/git/diff", params={"path": "keep.txt"})).json()
        assert diff == {"original": "one\n", "modified": "two\n"}
        added = (await server.client.get(f"{base}/git/diff", params={"path": "new.txt"})).json()
        assert added == {"original": "", "modified": "fresh\n"}
        outside = await server.client.get(f"{base}/git/diff", params={"path": "../x"})
        assert outside.status_code == 403
        assert (await server.client.get(f"{base}/git/diff")).status_code == 422


class _NoSandbox(FakeSandboxFactory):
    """A runtime whose sandbox cannot start here (bubblewrap missing)."""

    def create(self, spec: SandboxSpec) -> FakeSandbox:
        box = super().create(spec)

        async def unavailable(*args: object, **kwargs: object) -> ExecResult:
            raise SandboxUnavailable("bwrap not found; install bubblewrap")

        box.exec = unavailable  # type: ignore[method-assign]
        return box


async def test_git_routes_when_the_sandbox_cannot_run(server_factory: ServeFactory) -> None:
    async with server_factory(Overrides(sandbox_factory=_NoSandbox())) as server:
        cid = await _conversation(server, {"a.txt": b"a", ".git/HEAD": b"ref"})
        answer = await server.client.get(f"/api/conversations/{cid}/git/changes")
        assert answer.status_code == 503 and "install bubblewrap" in answer.json()["error"]


async def test_symlinks_lead_nowhere_outside(server_factory: ServeFactory, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"host secret")
    async with server_factory(_overrides()) as server:
        cid = await _conversation(server, {"inner/ok.txt": b"fine"})
        root = server.manager.workspace_path(cid)
        (root / "out").symlink_to(outside)
        (root / "secret.txt").symlink_to(outside / "secret.txt")
        (root / "alias").symlink_to("/workspace/inner")  # as the agent names it: inside
        base = f"/api/conversations/{cid}"
        for name in ("out/secret.txt", "secret.txt"):
            shown = await server.client.get(f"{base}/select-file", params={"file": name})
            assert shown.status_code == 403 and "host secret" not in shown.text, name
        listed = await server.client.get(f"{base}/list-files", params={"path": "out"})
        assert listed.status_code == 403
        top = await server.client.get(f"{base}/list-files")
        assert top.json() == ["alias/", "inner/", "out", "secret.txt"]
        inside = await server.client.get(f"{base}/select-file", params={"file": "alias/ok.txt"})
        assert inside.json() == {"code": "fine"}
        uploaded = await server.client.post(
            f"{base}/upload-files", files=[("files", ("out/dropped.txt", b"x", "text/plain"))]
        )
        assert uploaded.json()["uploaded_files"] == []
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
        archive = await server.client.get(f"{base}/zip-directory")
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
            assert zipped.namelist() == ["inner/ok.txt"]
