"""One MCP server's connection, through the official ``mcp`` SDK (imported only here, and
only for a conversation whose settings name MCP servers).

- **stdio** servers run inside the conversation's sandbox (``Sandbox.spawn``): the SDK's
  ``stdio_client`` would start them on the host, so its lower-level interface is used, a
  ``ClientSession`` over anyio memory streams of JSON-RPC messages that :func:`pipe_streams`
  feeds from and to the program's pipes. A line longer than ``LINE_LIMIT`` ends the
  connection rather than filling the server's memory.
- **SSE** and **streamable HTTP** servers are reached from this process with the SDK's
  clients (their URLs come from the user's settings, never from the agent), the API key
  sent as OpenHands sends it.

Each connection lives in a task of its own (``mcp:<conversation>:<server>``), which enters
the SDK's contexts and leaves them when closed: a transport that fails ends that task
only, never the agent's loop. Calls come from the agent's task, bounded in time. Every
failure is a ToolServerError naming the server, quoting no secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import ClientSession, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import McpError
from mcp.shared.message import SessionMessage

from convo.errors import ConvoError, ToolServerError
from convo.runtime.base import Sandbox
from convo.runtime.spawned import SandboxProcess

logger = logging.getLogger(__name__)

MAX_TOOL_PAGES = 8
ReadStream = MemoryObjectReceiveStream[SessionMessage | Exception]
WriteStream = MemoryObjectSendStream[SessionMessage]


@dataclass(frozen=True)
class ServerSpec:
    """What to connect to; ``label`` names it in messages ("stdio server 'fs'")."""

    label: str
    kind: Literal["stdio", "sse", "shttp"]
    url: str = field(default="", repr=False)
    shown_url: str = ""  # ``url`` without credentials, query or fragment
    api_key: str | None = field(default=None, repr=False)
    command: list[str] = field(default_factory=list)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 60.0  # per call, and for connecting

    def headers(self) -> dict[str, str] | None:
        if not self.api_key:
            return None
        key = self.api_key
        return {"Authorization": f"Bearer {key}", "s": key, "X-Session-API-Key": key}


# --- stdio over the sandbox's pipes ---------------------------------------------------------
@asynccontextmanager
async def pipe_streams(
    process: SandboxProcess, on_end: Callable[[], object] = lambda: None
) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """The SDK's stream pair over a spawned program's stdout and stdin (one JSON-RPC
    message a line); ``on_end`` is called when its stdout ends (it exited). The program is
    closed when the context ends."""
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def read_lines() -> None:
        async with read_writer:
            while True:
                try:
                    line = await process.stdout.readline()
                except ValueError:  # longer than the reader's limit
                    await read_writer.send(ToolServerError("a message over 8 MiB"))
                    on_end()
                    return
                if not line:
                    on_end()
                    return
                if not line.strip():
                    continue
                try:
                    message = types.JSONRPCMessage.model_validate_json(line)
                except ValueError as exc:  # noise on stdout: say so, keep reading
                    await read_writer.send(exc)
                    continue
                await read_writer.send(SessionMessage(message))

    async def write_lines() -> None:
        async with write_reader:
            async for item in write_reader:
                data = item.message.model_dump_json(by_alias=True, exclude_none=True)
                try:
                    process.stdin.write(data.encode() + b"\n")
                    await process.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    return

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(read_lines)
            group.start_soon(write_lines)
            try:
                yield read_stream, write_stream
            finally:
                group.cancel_scope.cancel()
    finally:
        await process.close()


# --- one connection -------------------------------------------------------------------------
class McpConnection:
    """One MCP server: ``start`` connects and lists its tools; ``call`` calls one."""

    def __init__(self, spec: ServerSpec, sandbox: Sandbox, conversation_id: str) -> None:
        self.spec = spec
        self.sandbox = sandbox
        self.conversation_id = conversation_id
        self._name = f"mcp:{conversation_id}:{spec.label}"
        self._session: ClientSession | None = None
        self._process: SandboxProcess | None = None
        self._closing = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None
        self.tools: list[types.Tool] = []

    @property
    def alive(self) -> bool:
        return self._owner is not None and not self._owner.done() and self._session is not None

    async def start(self) -> None:
        """Connect and list the tools; raises ToolServerError (the connection is closed)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        ready.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._owner = asyncio.create_task(self._own(ready), name=self._name)
        try:
            await asyncio.wait_for(asyncio.shield(ready), self.spec.timeout)
        except TimeoutError:
            await self.close()
            raise ToolServerError(
                f"{self.spec.label} did not answer within {self.spec.timeout:g} s"
            ) from None
        except ToolServerError:
            await self.close()
            raise
        except asyncio.CancelledError:  # the loop stops while connecting: leave nothing behind
            await asyncio.shield(self.close())
            raise

    async def _own(self, ready: asyncio.Future[None]) -> None:
        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self.tools = await self._list_tools(session)
                self._session = session
                ready.set_result(None)
                await self._closing.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the SDK raises what its transports meet
            error = self._failure(exc)
            if not ready.done():
                ready.set_exception(error)
            else:  # the type only: the detail may quote the server's output (a secret)
                logger.warning("%s ended: %s", self._name, type(exc).__name__)
        finally:
            self._session = None
            if not ready.done():
                ready.set_exception(ToolServerError(f"{self.spec.label} closed"))

    def _failure(self, exc: BaseException) -> ToolServerError:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.spec.url:  # as the label shows it: no credentials or query
            detail = detail.replace(self.spec.url, self.spec.shown_url)
        if self._process is not None and self._process.stderr_tail().strip():
            last = self._process.stderr_tail().strip().splitlines()[-1]
            detail += f" (its last error output: {last[:300]})"
        return ToolServerError(f"{self.spec.label} failed: {detail[:600]}")

    def _transport(self) -> AbstractAsyncContextManager[Any]:
        spec = self.spec
        if spec.kind == "stdio":
            return self._stdio()
        if spec.kind == "sse":
            return sse_client(spec.url, headers=spec.headers(), timeout=spec.timeout)
        return self._streamable_http()

    @asynccontextmanager
    async def _stdio(self) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
        self._process = await self.sandbox.spawn(self.spec.command, env=self.spec.env)
        async with pipe_streams(self._process, on_end=self._closing.set) as streams:
            yield streams

    @asynccontextmanager
    async def _streamable_http(self) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
        timeout = httpx.Timeout(self.spec.timeout, read=max(self.spec.timeout, 300.0))
        async with create_mcp_http_client(headers=self.spec.headers(), timeout=timeout) as client:
            async with streamable_http_client(self.spec.url, http_client=client) as streams:
                yield streams[0], streams[1]

    @staticmethod
    async def _list_tools(session: ClientSession) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(page.tools)
            cursor = page.nextCursor
            if not cursor:
                break
        return tools

    async def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        session, owner = self._session, self._owner
        if session is None or owner is None or owner.done():
            raise ToolServerError(f"{self.spec.label} is not connected")
        seconds = self.spec.timeout
        request = asyncio.create_task(
            session.call_tool(name, arguments, read_timeout_seconds=timedelta(seconds=seconds)),
            name=f"{self._name}:call",
        )
        try:
            await asyncio.wait(
                {request, owner}, timeout=seconds + 5, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not request.done():
                request.cancel()
                await asyncio.gather(request, return_exceptions=True)
        if request.cancelled():
            if owner.done():
                raise ToolServerError(f"{self.spec.label} disconnected during the call")
            raise ToolServerError(f"{self.spec.label} did not answer within {seconds:g} s")
        error = request.exception()
        if isinstance(error, ConvoError):
            raise error
        if isinstance(error, McpError):  # the server answered with an error
            raise ToolServerError(f"{self.spec.label}: {error}") from None
        if error is not None:  # the transport broke: connect again at the next call
            self._closing.set()
            raise self._failure(error) from None
        return request.result()

    async def close(self) -> None:
        """Leave the SDK's contexts (a moment for a clean end), stop the program."""
        self._closing.set()
        owner, self._owner = self._owner, None
        if owner is not None:
            if self._session is None:
                owner.cancel()  # still connecting (or done): nothing to end cleanly
            else:
                await asyncio.wait({owner}, timeout=5)
                owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)
        if self._process is not None:
            await self._process.close()


# --- results --------------------------------------------------------------------------------
def result_text(result: types.CallToolResult) -> str:
    """What the model reads of a tool's result: its text parts; other parts described."""
    parts: list[str] = []
    for item in result.content:
        if isinstance(item, types.TextContent):
            parts.append(item.text)
        elif isinstance(item, types.EmbeddedResource):
            resource = item.resource
            text = getattr(resource, "text", None)
            parts.append(text if isinstance(text, str) else f"[resource {resource.uri}]")
        elif isinstance(item, types.ImageContent | types.AudioContent):
            parts.append(f"[{item.type}: {item.mimeType}]")
        elif isinstance(item, types.ResourceLink):
            parts.append(f"[resource link: {item.uri}]")
    if not parts and result.structuredContent is not None:
        parts.append(json.dumps(result.structuredContent, ensure_ascii=False))
    return "\n".join(parts)
