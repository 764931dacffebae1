"""zip-directory reads at most the workspace's quota: sparse files (which allocate nothing,
so no quota counts them) cannot make the server read and compress terabytes of zeros."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import make_settings, serve

QUOTA_MB = 20
SPARSE_FILES = 40  # 40 files of 19 MB each: 760 MB to read, none of it on the disk


@pytest.mark.timeout(120)
async def test_zip_directory_refuses_a_workspace_of_sparse_files_past_the_quota(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, workspace_disk_mb=QUOTA_MB)
    async with serve(settings) as server:
        created = await server.client.post("/api/conversations", json={})
        assert created.status_code == 200, created.text
        cid = created.json()["conversation_id"]
        workspace = tmp_path / "data" / "workspaces" / cid
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "notes.txt").write_text("kept\n")
        small = await server.client.get(f"/api/conversations/{cid}/zip-directory")
        assert small.status_code == 200, small.text
        for i in range(SPARSE_FILES):  # what `truncate -s 19M` does in the sandbox
            with open(workspace / f"sparse{i}", "wb") as handle:
                handle.truncate((QUOTA_MB - 1) * 2**20)
        zipped = await server.client.get(f"/api/conversations/{cid}/zip-directory")
        assert zipped.status_code == 413, (zipped.status_code, len(zipped.content))
        assert f"{QUOTA_MB} MB" in zipped.json()["detail"]
