"""Socket.IO at ``/socket.io/``, as the OpenHands 0.53 web client speaks it.

Connect with query parameters ``conversation_id`` (required), ``latest_event_id`` (default
-1; a value that is not an integer, such as ``undefined``, also means from the start),
``providers_set`` (comma-separated, repeated, or both) and ``session_api_key`` (when the
server has one). A refused connection gets a ``connect_error`` with a message; it never
creates anything.

On connect the conversation's loop is started and a task owned by the connection sends the
events after ``latest_event_id`` as ``oh_event``, then the live ones, with nothing missed or
repeated in between (an ``EventFeed`` subscribes before it replays). Which of them go out,
and with which ``source``, follows OpenHands' server (``convo.services.socket_view``). Clients send
``oh_user_action`` (or the legacy ``oh_action``): a message, ``change_agent_state``, or a
user ``run`` (the terminal), ``read`` or ``edit`` (``convo.services.user_events``); other
action types are answered with ``{error: true, message}``.

A client that cannot keep up is sent a last status update carrying ``last_event_id`` and is
disconnected; reconnecting with ``latest_event_id`` set to it resumes without a gap.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI

from convo.api.sio_import import server_side
from convo.config import Settings
from convo.domain.conversation import ProviderType
from convo.errors import ConversationNotFound, ConvoError, InvalidConversationId
from convo.services.conversations import ConversationManager
from convo.services.event_log import status_update
from convo.services.socket_view import SocketView
from convo.services.streams import EventFeed, FeedEnd, StreamOptions

logger = logging.getLogger(__name__)

NAMESPACE = "/"
FELL_BEHIND = "STATUS$FELL_BEHIND"
_CONNECT_WAIT_SECONDS = 5.0


class Refused(Exception):
    """Why a connection is refused; becomes the client's connect_error message."""

    def __init__(self, message: str, msg_id: str) -> None:
        super().__init__(message)
        self.msg_id = msg_id


@dataclass
class _Connection:
    conversation_id: str
    feed: EventFeed
    view: SocketView
    task: asyncio.Task[None] | None = None
    actions: asyncio.Lock = field(default_factory=asyncio.Lock)


class SocketServer:
    """The Socket.IO server of one app; ``asgi_app()`` serves it next to the FastAPI app."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._socketio = server_side()
        self.sio = self._socketio.async_server(
            async_mode="asgi",
            cors_allowed_origins="*",
            max_http_buffer_size=4 * 1024 * 1024,
            logger=False,
            engineio_logger=False,
        )
        self._connections: dict[str, _Connection] = {}
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("oh_user_action", self._on_user_action)
        self.sio.on("oh_action", self._on_user_action)

    def asgi_app(self) -> Any:
        return self._socketio.asgi_app(
            self.sio, other_asgi_app=self._app, socketio_path="socket.io"
        )

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def aclose(self) -> None:
        """Disconnect every socket and wait for their tasks (on server shutdown)."""
        for sid in list(self._connections):
            await self.sio.disconnect(sid)
        tasks = [c.task for c in self._connections.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._connections.clear()

    # --- state from the app ------------------------------------------------------------
    @property
    def _manager(self) -> ConversationManager:
        manager: ConversationManager = self._app.state.manager
        return manager

    @property
    def _options(self) -> StreamOptions:
        options: StreamOptions = getattr(self._app.state, "stream_options", StreamOptions())
        return options

    # --- handlers ----------------------------------------------------------------------
    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            connection = await self._accept(environ, auth)
        except Refused as refused:
            logger.info("socket connection refused: %s", refused)
            raise self._socketio.connection_refused(
                str(refused), {"msg_id": refused.msg_id}
            ) from None
        except Exception:
            logger.exception("socket connect failed")
            raise self._socketio.connection_refused(
                "Could not join the conversation", {"msg_id": "STATUS$ERROR"}
            ) from None
        self._connections[sid] = connection
        connection.task = asyncio.create_task(
            self._send_events(sid, connection),
            name=f"socketio:{connection.conversation_id}:{sid}",
        )

    async def _accept(self, environ: dict[str, Any], auth: Any) -> _Connection:
        raw = parse_qs(environ.get("QUERY_STRING", ""))
        query = {k: v[-1] for k, v in raw.items()}
        self._check_key(self._app.state.settings, query, auth)
        conversation_id = query.get("conversation_id", "")
        if not conversation_id:
            raise Refused("conversation_id is required", "CONVERSATION$MISSING_ID")
        after = _latest_event_id(query.get("latest_event_id"))
        # repeated (providers_set=github&providers_set=gitlab) or comma-joined, as OpenHands
        providers = _providers(",".join(raw.get("providers_set", [])))
        manager = self._manager
        try:
            metadata = await manager.get_metadata(conversation_id)
        except (ConversationNotFound, InvalidConversationId):
            raise Refused(
                f"Conversation {conversation_id} not found", "CONVERSATION$NOT_FOUND"
            ) from None
        # opened before the loop starts: nothing it emits can slip past this client
        feed = manager.open_feed(conversation_id, after, self._options)
        try:
            view = await SocketView.open(manager.storage.events, conversation_id)
            await manager.start(conversation_id, metadata.user_id, providers)
        except ConvoError as exc:
            feed.close()
            raise Refused(f"Failed to start conversation: {exc}", "STATUS$ERROR") from None
        except BaseException:
            feed.close()  # never leave a subscription behind: it would count as a listener
            raise
        return _Connection(conversation_id, feed, view)

    @staticmethod
    def _check_key(settings: Settings, query: dict[str, str], auth: Any) -> None:
        expected = settings.session_api_key
        if expected is None:
            return
        given = query.get("session_api_key")
        if given is None and isinstance(auth, dict):
            value = auth.get("session_api_key")
            given = value if isinstance(value, str) else None
        if given is None:
            raise Refused("session_api_key is required", "AUTHENTICATION$MISSING_KEY")
        if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise Refused("Invalid session_api_key", "AUTHENTICATION$INVALID_KEY")

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:  # noqa: ARG002
        connection = self._connections.pop(sid, None)
        if connection is None:
            return
        connection.feed.close()
        task = connection.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _on_user_action(self, sid: str, data: Any) -> None:
        connection = self._connections.get(sid)
        if connection is None:
            return
        if not isinstance(data, dict):
            await self._send_error(sid, "An action must be a JSON object")
            return
        async with connection.actions:  # one client's actions are stored in the order sent
            try:
                await self._manager.send_user_event(connection.conversation_id, data)
            except ConvoError as exc:
                await self._send_error(sid, str(exc))
            except Exception:
                logger.exception("user action on %s failed", connection.conversation_id)
                await self._send_error(sid, "The action could not be handled")

    async def _send_error(self, sid: str, message: str) -> None:
        await self.sio.emit("oh_event", {"error": True, "message": message}, to=sid)

    # --- the connection's task ---------------------------------------------------------
    async def _send_events(self, sid: str, connection: _Connection) -> None:
        feed = connection.feed
        try:
            await self._until_connected(sid)
            while not isinstance(payload := await feed.next(), FeedEnd):
                if payload is None or (shaped := connection.view.shape(payload)) is None:
                    continue
                await self.sio.emit("oh_event", shaped, to=sid)
                await self._wait_for_room(sid)
            if feed.fell_behind:
                await self.sio.emit("oh_event", _fell_behind(feed.last_event_id), to=sid)
            await self.sio.disconnect(sid)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("sending events to %s failed", sid)
            await self.sio.disconnect(sid)
        finally:
            feed.close()
            if self._connections.get(sid) is connection:  # gone even if never connected
                del self._connections[sid]

    async def _until_connected(self, sid: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CONNECT_WAIT_SECONDS
        while not self.sio.manager.is_connected(sid, NAMESPACE):
            if loop.time() > deadline:
                raise TimeoutError("the socket did not finish connecting")
            await asyncio.sleep(0.005)

    async def _wait_for_room(self, sid: str) -> None:
        """Wait while this client's unsent packets pile up, so that a slow client fills its
        bounded feed (and is cut off) instead of growing an unbounded send queue."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        socket = self.sio.eio.sockets.get(eio_sid) if eio_sid else None
        queue = getattr(socket, "queue", None)
        if queue is None:
            return
        limit = self._options.socket_backlog
        # engine.io's queue offers no "drained" event to wait on, so poll it
        while queue.qsize() > limit and not getattr(socket, "closed", True):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def _latest_event_id(value: str | None) -> int:
    """The last event the client has; anything that is not an integer (the web client sends
    the string ``undefined`` before its first event) means none, as in OpenHands."""
    try:
        return max(-1, int(value)) if value is not None else -1
    except ValueError:
        return -1


def _providers(value: str) -> list[ProviderType] | None:
    chosen: list[ProviderType] = []
    for name in value.split(","):
        name = name.strip().lower()
        if not name:
            continue
        try:
            chosen.append(ProviderType(name))
        except ValueError:
            raise Refused(f"Unknown provider {name!r} in providers_set", "STATUS$ERROR") from None
    return chosen or None


def _fell_behind(last_event_id: int) -> dict[str, Any]:
    return status_update(
        "info",
        FELL_BEHIND,
        f"This client fell too far behind; reconnect with latest_event_id={last_event_id}",
        last_event_id=last_event_id,
    )
