"""Schemathesis over the whole OpenAPI of a real server: generated valid and invalid requests
for every operation, held at zero server errors and zero responses that break the schema.

The server is the real app on 127.0.0.1 (real storage, routes, guard and manager); only the
sandbox is the in-memory twin and the LLM scripted, so that hundreds of generated
conversations start no shells. Schemathesis runs as its own process (its CLI), with
deterministic generation (the same cases every run), NUL allowed in generated strings, 15
examples per operation plus its coverage phase (boundary and invalid values): about 1,300
requests, under a minute here, bounded at four minutes.

Generated conversation ids would all be unknown (404 before any real work), so the ids of a
few real conversations (and the name of a real file) are offered for about half the cases.

Excluded, and why:
- ``GET /api/conversations/{id}/events/stream``: Server-Sent Events, a response that never
  ends while the conversation exists; a fuzzer waits on it until its timeout. Its bad input
  (ids, ``Last-Event-ID``) is the same as ``/events``', covered by tests/stream.
- Socket.IO (``/socket.io/``) is not in the OpenAPI; its input is tested in tests/api.
- checks are the two the server promises (``not_a_server_error``,
  ``response_schema_conformance``); auth checks need a session key, which this server runs
  without (auth is tested in tests/api/test_auth.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM, text_response
from tests.api.conftest import RunningServer, make_settings, serve
from tests.stream.helpers import FakeSandboxFactory

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_SECONDS = 240
EXCLUDED_PATHS = ["/api/conversations/{conversation_id}/events/stream"]


async def _config_with_real_ids(server: RunningServer, directory: Path) -> Path:
    """A schemathesis.toml offering real conversation ids and file names to the generator."""
    ids = []
    for message in ("first", "second", "third"):
        created = await server.client.post("/api/conversations", json={"initial_user_msg": message})
        ids.append(created.json()["conversation_id"])
    for cid in ids:
        workspace = server.manager.workspace_path(cid)
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "notes.txt").write_text("hello\n")
    config = directory / "schemathesis.toml"
    config.write_text(
        f"""
[dictionaries.conversations]
values = {json.dumps(ids)}

[dictionaries.files]
values = ["notes.txt", ".", "missing.txt"]

[parameters]
"path.conversation_id" = {{ dictionary = "conversations", probability = 0.5 }}
"query.file" = {{ dictionary = "files", probability = 0.5 }}
"query.path" = {{ dictionary = "files", probability = 0.5 }}
"""
    )
    return config


@pytest.mark.timeout(MAX_SECONDS + 60)
async def test_no_server_error_and_no_schema_violation(tmp_path: Path) -> None:
    def llm(_config: object) -> ScriptedLLM:
        return ScriptedLLM([text_response("ok")] * 3)

    overrides = Overrides(sandbox_factory=FakeSandboxFactory(), llm_factory=llm)
    settings = make_settings(tmp_path, max_concurrent_conversations=2, idle_close_seconds=5)
    async with serve(settings, overrides) as server:
        config = await _config_with_real_ids(server, tmp_path)
        args = [
            str(SCHEMATHESIS),
            "--config-file",
            str(config),
            "run",
            f"{server.base_url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            # schemathesis's own health checks judge its generator (too many cases filtered
            # out, too slow on a loaded machine), not the server: they would fail the test
            # without a single request having gone wrong
            "--suppress-health-check",
            "all",
            "--generation-deterministic",  # the same cases on every run
            "--generation-allow-x00",
            "true",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--no-color",
            "--continue-on-failure",
            *[arg for path in EXCLUDED_PATHS for arg in ("--exclude-path", path)],
        ]
        process = await asyncio.create_subprocess_exec(
            *args,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), MAX_SECONDS)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        text = output.decode(errors="replace")
        print(text[-6000:])  # the summary, shown when the test fails
        assert process.returncode == 0, text[-20000:]
        assert (await server.client.get("/alive")).status_code == 200
