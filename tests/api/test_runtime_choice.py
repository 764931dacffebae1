"""The configured runtime: a required sandbox never falls back; the network can be cut."""

from __future__ import annotations

import socket

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM, text_response, tool_response
from convo.runtime.bwrap import BwrapSandboxFactory
from tests.api.conftest import ServeFactory, first_events, wait_for


async def test_a_sandbox_that_cannot_start_fails_the_conversation_clearly(
    server_factory: ServeFactory,
) -> None:
    broken = BwrapSandboxFactory(bwrap="/nonexistent/bwrap")
    async with server_factory(Overrides(sandbox_factory=broken)) as server:
        cid = (await server.client.post("/api/conversations", json={})).json()["conversation_id"]

        async def failed() -> bool:
            return any(
                e.get("observation") == "error" for e in await first_events(server.client, cid)
            )

        await wait_for(failed)
        events = await first_events(server.client, cid)
        error = next(e for e in events if e.get("observation") == "error")
        assert "Failed to start conversation" in error["content"]
        assert error["extras"]["error_id"] == "STATUS$ERROR_RUNTIME_DISCONNECTED"
        await wait_for(lambda: server.manager.status(cid).value == "STOPPED")
        assert not server.manager.workspace_path(cid).joinpath("anything").exists()


async def test_the_network_can_be_cut_for_sandboxed_commands(
    server_factory: ServeFactory,
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    probe = f"(exec 3<>/dev/tcp/127.0.0.1/{port}) && echo reached || echo cut-off"
    llm = ScriptedLLM([tool_response("execute_bash", {"command": probe}), text_response("ok")])
    try:
        async with server_factory(
            Overrides(llm_factory=lambda _c: llm), runtime="sandbox", sandbox_network="none"
        ) as server:
            cid = (
                await server.client.post("/api/conversations", json={"initial_user_msg": "probe"})
            ).json()["conversation_id"]

            async def ran() -> bool:
                return any(
                    e.get("observation") == "run" for e in await first_events(server.client, cid)
                )

            await wait_for(ran, timeout=30)
            run = next(
                e for e in await first_events(server.client, cid) if e.get("observation") == "run"
            )
            assert "cut-off" in run["content"] and "reached" not in run["content"]
    finally:
        listener.close()
