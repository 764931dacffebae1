"""Images and files the OpenHands 0.53 web client attaches to a message, replayed over real
HTTP and Socket.IO against the scripted OpenAI-compatible LLM server: they are kept on the
event and reach the model (images as image parts where the model takes images)."""

from __future__ import annotations

from typing import Any

from convo.llm.scripted_server import ScriptedLLMServer
from convo.llm.scripted_server_script import text
from tests.api.conftest import RunningServer, ServeFactory, wait_for
from tests.stream.helpers import SocketClient

PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _user_messages(request: dict[str, Any]) -> list[Any]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


def _image_parts(content: Any) -> list[str]:
    if not isinstance(content, list):
        return []
    return [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


async def _waiting(server: RunningServer, cid: str, count: int) -> bool:
    page = await server.client.get(f"/api/conversations/{cid}/events", params={"limit": 100})
    states = [
        e["extras"]["agent_state"]
        for e in page.json()["events"]
        if e.get("observation") == "agent_state_changed"
    ]
    return states.count("awaiting_user_input") >= count


async def test_images_and_files_reach_a_model_that_takes_images(
    server_factory: ServeFactory,
) -> None:
    script = [text("I see a pixel."), text("I see the file.")]
    async with (
        ScriptedLLMServer(script, api_key="k") as llm,
        server_factory(
            llm_model="openai/gpt-4o", llm_base_url=llm.base_url, llm_api_key="k"
        ) as server,
    ):
        # the home screen's create: a message with an image (hooks: use-create-conversation)
        created = await server.client.post(
            "/api/conversations",
            json={"initial_user_msg": "What is this?", "image_urls": [PIXEL]},
        )
        cid = created.json()["conversation_id"]
        await wait_for(lambda: _waiting(server, cid, 1), timeout=30)
        first = _user_messages(llm.requests[0])[-1]
        assert _image_parts(first) == [PIXEL] and _text_of(first) == "What is this?"

        # the chat input: an image and an uploaded file (services/chat-service.ts)
        client = SocketClient(server.base_url)
        await client.connect(cid, latest_event_id=-1)
        try:
            message = {
                "action": "message",
                "args": {
                    "content": "And this file?",
                    "image_urls": [PIXEL],
                    "file_urls": ["/workspace/report.csv"],
                    "timestamp": "2025-08-14T10:00:00.000Z",
                },
            }
            await client.sio.emit("oh_user_action", message)
            await wait_for(lambda: _waiting(server, cid, 2), timeout=30)
            sent = [
                e
                for e in client.events
                if e.get("action") == "message" and e.get("source") == "user"
            ][-1]
            assert sent["args"]["file_urls"] == ["/workspace/report.csv"]
            assert sent["args"]["image_urls"] == [PIXEL]
        finally:
            await client.disconnect()
        last = _user_messages(llm.requests[1])[-1]
        assert _image_parts(last) == [PIXEL]
        assert "/workspace/report.csv" in _text_of(last)
        assert llm.requests[1]["model"] == "gpt-4o"


async def test_a_model_without_vision_gets_a_note_instead(server_factory: ServeFactory) -> None:
    async with (
        ScriptedLLMServer([text("Noted.")], api_key="k") as llm,
        server_factory(
            llm_model="openai/gpt-3.5-turbo", llm_base_url=llm.base_url, llm_api_key="k"
        ) as server,
    ):
        created = await server.client.post(
            "/api/conversations",
            json={"initial_user_msg": "What is this?", "image_urls": [PIXEL, PIXEL]},
        )
        cid = created.json()["conversation_id"]
        await wait_for(lambda: _waiting(server, cid, 1), timeout=30)
        content = _user_messages(llm.requests[0])[-1]
        assert isinstance(content, str) and PIXEL not in content
        assert "attached 2 image(s)" in content
        events = await server.client.get(f"/api/conversations/{cid}/events")
        assert events.json()["events"][0]["args"]["image_urls"] == [PIXEL, PIXEL]  # kept
