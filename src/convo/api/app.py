"""create_app(settings): wires storage, bus, runtime and LLM into the conversation manager.

``create_asgi_app`` serves the same app with Socket.IO at ``/socket.io/`` in front of it.

Start-up: the manager kills what a killed predecessor left behind and resumes (or marks
stopped) the conversations that were running, before the first request is served.
Shutdown (``begin_shutdown``, called by ``convo serve`` as soon as SIGTERM/SIGINT arrives,
else by the lifespan): new starts are refused (503), running commands get part of the grace
period, every loop stops (its conversation resumes on the next start), then live streams
and sockets are closed so that the HTTP server's connections drain, then the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp

from convo import __version__
from convo.api.deps import require_session_key
from convo.api.errors import install_error_handlers
from convo.api.input_guard import InputGuard
from convo.api.routes import (
    conversation_extras,
    conversation_feedback,
    conversations,
    events,
    files,
    health,
    options,
    secrets,
    stream,
    user,
    web,
)
from convo.api.routes import settings as settings_routes
from convo.api.socketio import SocketServer
from convo.cluster.base import EventBus
from convo.cluster.channel import LocalNodeNetwork, NodeChannel
from convo.cluster.local import LocalEventBus
from convo.cluster.node import new_node_id
from convo.cluster.wakeups import LocalWakeupHub, Wakeups
from convo.config import Settings
from convo.host_lock import HostLock, describe_this_process
from convo.llm.base import LLMClientFactory
from convo.llm.select import LLMClients
from convo.runtime.base import SandboxFactory
from convo.services.conversations import ConversationManager
from convo.services.storage_health import open_on_full_disk
from convo.services.streams import StreamOptions
from convo.storage.at_rest import prepare_data_dir
from convo.storage.base import Storage

if TYPE_CHECKING:
    from convo.cluster.redis_node import RedisNode

logger = logging.getLogger(__name__)


@dataclass
class Overrides:
    """Implementations tests may substitute; anything None is chosen from settings."""

    storage: Storage | None = None
    bus: EventBus | None = None
    sandbox_factory: SandboxFactory | None = None
    llm_factory: LLMClientFactory | None = None
    stream_options: StreamOptions | None = None


def _default_storage(settings: Settings) -> Storage:
    from convo.storage import open_storage
    from convo.storage.at_rest import load_sealer
    from convo.storage.engine import EngineOptions

    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    options = EngineOptions(
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout_seconds=settings.db_pool_timeout_seconds,
        statement_timeout_seconds=settings.db_statement_timeout_seconds,
        connect_timeout_seconds=settings.db_connect_timeout_seconds,
    )
    return open_storage(
        settings.resolved_database_url(),
        load_sealer(settings.resolved_data_dir(), key),
        options,
    )


async def _default_sandbox_factory(settings: Settings) -> tuple[SandboxFactory, str | None]:
    """The runtime chosen by CONVO_RUNTIME, and a warning to show when it is unconfined."""
    from convo.runtime.network import network_warning
    from convo.runtime.select import choose_sandbox_factory

    disk_mb = settings.workspace_disk_mb
    factory = await asyncio.to_thread(
        choose_sandbox_factory,
        settings.runtime,
        network=settings.sandbox_network,
        disk_limit_bytes=disk_mb * 1024 * 1024 if disk_mb else None,
    )
    if factory.name == "process":
        return factory, (
            "agent commands run unconfined on this host (runtime 'process'): install "
            "bubblewrap and use CONVO_RUNTIME=auto or sandbox to confine them"
        )
    return factory, network_warning(settings.sandbox_network)


@dataclass
class Transport:
    """How this server reaches the others: live events, requests between nodes, wake-ups,
    and the Redis connections they use in cluster mode (None on a single server)."""

    bus: EventBus
    channel: NodeChannel
    wakeups: Wakeups
    redis: RedisNode | None

    async def aclose(self) -> None:
        await self.bus.aclose()
        await self.channel.aclose()
        await self.wakeups.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def _transport(settings: Settings, node_id: str, bus: EventBus | None) -> Transport:
    """In-process on a single server (no Redis round trip); over Redis in cluster mode,
    where every listener, on the owning server too, gets its events through Redis."""
    if settings.redis_url is None:
        return Transport(
            bus or LocalEventBus(),
            LocalNodeNetwork().channel(node_id),
            LocalWakeupHub().node(node_id),
            None,
        )
    from convo.cluster.redis_node import RedisNode  # redis is imported in cluster mode only

    redis = RedisNode(settings.redis_url.get_secret_value(), node_id)
    redis.start()
    return Transport(bus or redis.bus, redis.channel, redis.wakeups, redis)


def create_app(settings: Settings, overrides: Overrides | None = None) -> FastAPI:
    chosen = overrides or Overrides()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        data_dir = settings.resolved_data_dir()
        prepare_data_dir(data_dir)
        await open_on_full_disk(data_dir, settings.disk_reserve_mb)  # before anything writes
        # One server per data dir, and without Redis per database: a second one is refused
        # before it can touch the first one's processes (orphan clean-up) or resume its
        # conversations. Cluster nodes share the database (under leases), with no single
        # server.
        holder = describe_this_process()
        data_dir_lock = HostLock(data_dir / "server.lock", f"the data dir {data_dir}")
        data_dir_lock.claim(holder)
        storage = chosen.storage or _default_storage(settings)
        try:
            await storage.claim_single_server(holder, shared=settings.cluster_mode)
            await storage.migrate()
        except BaseException:
            await storage.aclose()
            data_dir_lock.release()
            raise
        transport = _transport(settings, app.state.node_id, chosen.bus)
        bus = transport.bus
        if chosen.sandbox_factory is not None:
            sandbox_factory, runtime_warning = chosen.sandbox_factory, None
        else:
            sandbox_factory, runtime_warning = await _default_sandbox_factory(settings)
            if runtime_warning:
                logger.warning("%s", runtime_warning)
        app.state.runtime_warning = runtime_warning
        # light OpenAI-compatible clients, litellm only for the models that need it
        llm_clients = LLMClients()
        manager = ConversationManager(
            settings=settings,
            storage=storage,
            bus=bus,
            sandbox_factory=sandbox_factory,
            llm_factory=chosen.llm_factory or llm_clients,
            node_id=app.state.node_id,
            channel=transport.channel,
            wakeups=transport.wakeups,
        )
        app.state.storage = storage
        app.state.bus = bus
        app.state.node_channel = transport.channel
        app.state.wakeups = transport.wakeups
        app.state.redis = transport.redis
        app.state.sandbox_factory = sandbox_factory
        app.state.manager = manager
        app.state.shutdown_task = None
        try:
            async with manager:
                logger.info("convo %s ready (runtime %s)", __version__, sandbox_factory.name)
                try:
                    yield
                finally:
                    await begin_shutdown(app)
        finally:
            await transport.aclose()
            await llm_clients.aclose()
            await storage.aclose()
            data_dir_lock.release()

    # No OpenTelemetry: convo exports none, and FastAPI otherwise checks for providers
    # around every request and every dependency.
    off: TelemetryConfig = {
        "tracing": False,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
    }
    app = FastAPI(title="convo", version=__version__, lifespan=lifespan, telemetry=off)
    app.state.settings = settings
    app.state.node_id = new_node_id()  # this process, as the other servers know it
    app.state.stream_options = chosen.stream_options or StreamOptions()
    app.state.socket_server = SocketServer(app)
    install_error_handlers(app)
    app.add_middleware(
        InputGuard,
        max_request_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.include_router(health.router)
    app.include_router(web.router)  # the page itself is open; the /api calls it makes are not
    auth = [Depends(require_session_key)]
    for router in (
        conversations.router,
        # the event stream before the conversation's extras: both are under /{id}/...
        stream.router,
        events.router,
        conversation_extras.router,
        conversation_feedback.router,
        files.router,
        settings_routes.router,
        secrets.router,
        options.router,
        user.router,
    ):
        app.include_router(router, dependencies=auth)
    return app


def begin_shutdown(app: FastAPI) -> asyncio.Task[None]:
    """Start the graceful shutdown (idempotent; the task is owned by ``app.state``)."""
    task: asyncio.Task[None] | None = getattr(app.state, "shutdown_task", None)
    if task is None:
        task = asyncio.create_task(_shutdown(app), name="app:shutdown")
        app.state.shutdown_task = task
    return task


async def _shutdown(app: FastAPI) -> None:
    try:
        await app.state.manager.shutdown()
    finally:
        await app.state.socket_server.aclose()
        await app.state.bus.aclose()  # ends the SSE streams


def create_asgi_app(settings: Settings, overrides: Overrides | None = None) -> ASGIApp:
    """The app as served: Socket.IO at /socket.io/, everything else to FastAPI.

    The FastAPI app (and its ``state``) stays reachable as ``fastapi_app(asgi_app)``.
    """
    app = create_app(settings, overrides)
    asgi: ASGIApp = app.state.socket_server.asgi_app()
    return asgi


def fastapi_app(asgi_app: ASGIApp) -> FastAPI:
    inner = getattr(asgi_app, "other_asgi_app", asgi_app)
    assert isinstance(inner, FastAPI)
    return inner
