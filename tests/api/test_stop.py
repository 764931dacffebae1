"""/stop over HTTP tells the truth: 200 once the loop has ended, an error while it has not."""

from __future__ import annotations

from pathlib import Path

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM
from tests.api.conftest import ServeFactory, wait_for
from tests.services.conftest import ClosingGate


async def test_stop_answers_an_error_while_the_loop_has_not_ended(
    server_factory: ServeFactory, tmp_path: Path
) -> None:
    sandboxes = ClosingGate(tmp_path / "ws")
    llm = ScriptedLLM()
    overrides = Overrides(sandbox_factory=sandboxes, llm_factory=lambda _config: llm)
    async with server_factory(overrides, stop_timeout_seconds=0.3) as server:
        client = server.client
        cid = (await client.post("/api/conversations", json={})).json()["conversation_id"]
        await wait_for(lambda: server.manager.status(cid).value == "RUNNING")
        sandboxes.gate.clear()  # its sandbox will take its time to close

        response = await client.post(f"/api/conversations/{cid}/stop")
        assert response.status_code == 500
        body = response.json()
        assert body["status"] == "error"
        assert body["conversation_id"] == cid
        assert "still being stopped" in body["message"]
        assert (await client.get(f"/api/conversations/{cid}")).json()["status"] == "RUNNING"

        sandboxes.gate.set()
        await wait_for(
            lambda: server.manager.status(cid).value == "STOPPED",
        )
        response = await client.post(f"/api/conversations/{cid}/stop")
        assert response.status_code == 200
        assert response.json()["message"] == "Conversation was not running"


async def test_stop_answers_ok_once_the_loop_has_ended(server_factory: ServeFactory) -> None:
    async with server_factory() as server:
        client = server.client
        cid = (await client.post("/api/conversations", json={})).json()["conversation_id"]
        await wait_for(lambda: server.manager.status(cid).value == "RUNNING")
        response = await client.post(f"/api/conversations/{cid}/stop")
        assert response.status_code == 200
        assert response.json()["message"] == "Conversation stopped successfully"
        assert response.json()["conversation_status"] == "STOPPED"
