"""Bad input through real HTTP: every one gets a 4xx, never a 500, and the server keeps
serving; a large body is refused before it is read; what the LLM sends never makes a
conversation's events unreadable; a start or message racing a delete gets 404, not 5xx."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from convo.domain.events import EventSource, message_action
from convo.llm.scripted import ScriptedLLM, text_response, tool_response
from tests.api.conftest import wait_for
from tests.security.conftest import ServerFactory

MB = 1024 * 1024


async def _create(client: httpx.AsyncClient, message: str | None = None) -> str:
    body = {"initial_user_msg": message} if message else {}
    response = await client.post("/api/conversations", json=body)
    assert response.status_code == 200, response.text
    cid: str = response.json()["conversation_id"]
    return cid


async def _still_serving(client: httpx.AsyncClient) -> None:
    assert (await client.get("/alive")).status_code == 200
    assert (await client.get("/api/conversations")).status_code == 200


def _raw_json(client: httpx.AsyncClient, method: str, url: str, body: bytes) -> Any:
    return client.request(method, url, content=body, headers={"content-type": "application/json"})


BAD_URLS = [
    "/api/conversations/%00",
    "/api/conversations/abc%00def",
    "/api/conversations/%FF%FE",
    "/api/conversations/%ED%A0%80",  # a UTF-16 surrogate encoded as UTF-8
    "/api/conversations?selected_repository=%00",
    "/api/conversations?page_id=%FF",
    "/api/conversations?limit=99999999999999999999",
    "/api/conversations?limit=9223372036854775808",
    "/api/conversations/{cid}/events?start_id=9223372036854775808",
    "/api/conversations/{cid}/events?end_id=-9223372036854775809",
    "/api/conversations/{cid}/events?limit=18446744073709551616",
    "/api/conversations/{cid}/select-file?file=%00",
    "/api/conversations/{cid}/select-file?file=a%00b",
    "/api/conversations/{cid}/select-file?file=%C3%28",
    "/api/conversations/{cid}/list-files?path=%00",
    "/api/conversations/{cid}/zip-directory?path=%FF",
    "/api/conversations/{cid}/git/diff?path=%00",
    "/api/secrets/%00",
]


async def test_bad_paths_and_query_strings_get_4xx(server_factory: ServerFactory) -> None:
    async with server_factory() as server:
        client = server.client
        cid = await _create(client)
        for template in BAD_URLS:
            url = template.format(cid=cid)
            response = await client.get(url)
            assert 400 <= response.status_code < 500, (url, response.status_code, response.text)
        for url in ("/api/conversations/%00/start", "/api/conversations/%FF/stop"):
            response = await client.post(url, json={})
            assert 400 <= response.status_code < 500, (url, response.status_code)
        await _still_serving(client)


BAD_BODIES: list[tuple[str, str, bytes]] = [
    ("POST", "/api/conversations", b'{"initial_user_msg": "\xff\xfe broken"}'),
    ("POST", "/api/conversations", b'{"initial_user_msg": "nul \\u0000 here"}'),
    ("POST", "/api/conversations", b'{"initial_user_msg": "lone \\ud800 surrogate"}'),
    ("POST", "/api/conversations", b'{"initial_user_msg": "low \\udfff first"}'),
    ("POST", "/api/conversations", b'{"initial_user_msg": "raw \xed\xa0\x80 surrogate"}'),
    (
        "POST",
        "/api/conversations",
        b'{"initial_user_msg": "x", "pr_number": [9223372036854775808]}',
    ),
    ("POST", "/api/conversations", b'{"\\u0000": 1}'),
    ("POST", "/api/conversations", b"[" * 100_000 + b"]" * 100_000),
    ("POST", "/api/conversations", b"{not json"),
    ("POST", "/api/settings", b'{"max_iterations": 9223372036854775808}'),
    ("POST", "/api/settings", b'{"max_iterations": -9223372036854775809}'),
    ("POST", "/api/settings", b'{"max_iterations": 100000000000000000000000000000}'),
    ("POST", "/api/settings", b'{"max_budget_per_task": NaN}'),
    ("POST", "/api/settings", b'{"max_budget_per_task": Infinity}'),
    ("POST", "/api/settings", b'{"max_budget_per_task": -Infinity}'),
    ("POST", "/api/settings", b'{"max_budget_per_task": 1e999}'),
    ("POST", "/api/settings", b'{"llm_model": "a\\u0000b"}'),
    ("POST", "/api/secrets", b'{"name": "OK", "value": "\\ud83d"}'),
    ("POST", "/api/add-git-providers", b'{"provider_tokens": {"github": {"token": "a\\u0000"}}}'),
    ("PATCH", "/api/conversations/{cid}", b'{"title": "\\udc00"}'),
    (
        "POST",
        "/api/conversations/{cid}/events",
        b'{"action": "message", "args": {"content": "\\ud800"}}',
    ),
    (
        "POST",
        "/api/conversations/{cid}/events",
        b'{"action": "message", "args": {"content": "\\u0000"}}',
    ),
    (
        "POST",
        "/api/conversations/{cid}/events",
        b'{"action": "message", "id": 9223372036854775808}',
    ),
    ("POST", "/api/conversations/{cid}/start", b'{"providers_set": ["\\u0000"]}'),
    ("POST", "/api/conversations/{cid}/start", b'{"providers_set": NaN}'),
]


async def test_bad_json_bodies_get_4xx(server_factory: ServerFactory) -> None:
    async with server_factory() as server:
        client = server.client
        cid = await _create(client)
        for method, template, body in BAD_BODIES:
            url = template.format(cid=cid)
            response = await _raw_json(client, method, url, body)
            assert 400 <= response.status_code < 500, (url, body[:80], response.status_code)
            assert "detail" in response.json()
        # nothing of it was stored
        events = (await client.get(f"/api/conversations/{cid}/events")).json()["events"]
        assert [e for e in events if e["source"] == "user"] == []
        settings = (await client.get("/api/settings")).json()
        assert settings.get("max_budget_per_task") is None
        await _still_serving(client)


async def test_the_validation_error_names_the_field(server_factory: ServerFactory) -> None:
    async with server_factory() as server:
        response = await _raw_json(
            server.client,
            "POST",
            "/api/conversations",
            b'{"initial_user_msg": "lone \\ud800", "image_urls": ["ok"]}',
        )
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "initial_user_msg"]
        assert error["type"] == "string_unicode"


async def _raw_request(base_url: str, head: bytes, body_prefix: bytes) -> bytes:
    """Send a request head and the start of its body, then read the answer (the rest of the
    body is never sent: an answer proves the server did not wait for it)."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head + body_prefix)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 20)
    finally:
        writer.close()


async def test_a_50_mb_body_gets_413_before_it_is_read(server_factory: ServerFactory) -> None:
    async with server_factory() as server:
        head = (
            b"POST /api/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (50 * MB)
        )
        answer = await _raw_request(server.base_url, head, b'{"initial_user_msg": "' + b"x" * MB)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"too large" in answer
        await _still_serving(server.client)


async def test_a_chunked_body_is_cut_off_at_the_limit(server_factory: ServerFactory) -> None:
    async with server_factory() as server:
        head = (
            b"POST /api/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * MB
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6))
        answer = await _raw_request(server.base_url, head, chunks)  # 6 MB of a never-ending body
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        await _still_serving(server.client)


async def test_the_limits_are_settings(server_factory: ServerFactory) -> None:
    async with server_factory(max_request_bytes=4096, max_upload_bytes=8192) as server:
        client = server.client
        cid = await _create(client)
        too_big = await client.post("/api/conversations", json={"initial_user_msg": "x" * 5000})
        assert too_big.status_code == 413
        fits = await client.post("/api/conversations", json={"initial_user_msg": "x" * 3000})
        assert fits.status_code == 200
        upload = await client.post(
            f"/api/conversations/{cid}/upload-files", files={"files": ("a.txt", b"y" * 6000)}
        )
        assert upload.status_code == 200, upload.text  # uploads have their own, larger limit
        upload = await client.post(
            f"/api/conversations/{cid}/upload-files", files={"files": ("b.txt", b"y" * 9000)}
        )
        assert upload.status_code == 413


async def test_what_the_llm_sends_never_makes_events_unreadable(
    server_factory: ServerFactory,
) -> None:
    """Lone surrogates, NUL, NaN from the model (in a tool argument, in its text) are stored
    replaced; the events, the conversation and its list stay readable."""
    llm = ScriptedLLM(
        [
            tool_response(
                "execute_bash",
                {"command": "echo 'high \ud800 low \udc00 nul \x00 end'", "timeout": float("nan")},
            ),
            text_response("I say \udfff and \x00 to you"),
        ]
    )
    async with server_factory(llm) as server:
        client = server.client
        cid = await _create(client, "go")

        async def answered() -> bool:
            events = (await client.get(f"/api/conversations/{cid}/events")).json()["events"]
            return any(e["source"] == "agent" and e.get("action") == "message" for e in events)

        await wait_for(answered, timeout=30)
        response = await client.get(f"/api/conversations/{cid}/events", params={"limit": 100})
        assert response.status_code == 200
        events = response.json()["events"]
        run = next(e for e in events if e.get("action") == "run")
        assert run["args"]["command"] == "echo 'high \ufffd low \ufffd nul \ufffd end'"
        reply = next(e for e in events if e["source"] == "agent" and e.get("action") == "message")
        assert reply["args"]["content"] == "I say \ufffd and \ufffd to you"
        assert (await client.get(f"/api/conversations/{cid}")).status_code == 200
        assert (await client.get(f"/api/conversations/{cid}/trajectory")).status_code == 200


async def test_events_stored_by_an_older_version_with_surrogates_load(
    server_factory: ServerFactory,
) -> None:
    async with server_factory() as server:
        cid = await _create(server.client)
        # what an older version let through, written straight into the store
        event = message_action("x", EventSource.AGENT).model_copy(  # no validation
            update={"message": "old \ud800", "unknown_top": {"extras": {"n": float("inf")}}}
        )
        await server.manager.storage.events.append(cid, event)
        response = await server.client.get(f"/api/conversations/{cid}/events")
        assert response.status_code == 200
        (stored,) = [e for e in response.json()["events"] if e.get("action") == "message"]
        assert stored["message"] == "old \ufffd"


@pytest.mark.parametrize("kind", ["start", "message"])
async def test_a_start_or_message_racing_a_delete_gets_404_not_5xx(
    server_factory: ServerFactory, kind: str
) -> None:
    async with server_factory() as server:
        client = server.client
        seen: set[int] = set()
        for _ in range(8):
            cid = await _create(client)
            if kind == "start":
                racer = client.post(f"/api/conversations/{cid}/start", json={})
            else:
                racer = client.post(
                    f"/api/conversations/{cid}/events",
                    json={"action": "message", "args": {"content": "hi"}},
                )
            raced, deleted = await asyncio.gather(racer, client.delete(f"/api/conversations/{cid}"))
            assert deleted.status_code in (200, 404)
            assert raced.status_code in (200, 404, 409), (raced.status_code, raced.text)
            seen.add(raced.status_code)
            after = await client.post(f"/api/conversations/{cid}/start", json={})
            assert after.status_code == 404
        await _still_serving(client)


async def test_a_client_expecting_100_continue_gets_413_without_sending(
    server_factory: ServerFactory,
) -> None:
    async with server_factory() as server:
        head = (
            b"POST /api/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % (50 * MB)
        )
        answer = await _raw_request(server.base_url, head, b"")
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        await _still_serving(server.client)
