"""Running the HTTP server: ``convo serve`` in the foreground, or embedded in a thread for
``convo run`` when no server runs on the data dir.

Before uvicorn starts, :func:`preflight` checks what start-up needs (a writable data dir,
a database that opens and migrates) and the socket is bound here, so that each failure is
reported as one readable line instead of a traceback from the ASGI lifespan.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from convo.api.app import Overrides, begin_shutdown, create_asgi_app, fastapi_app
from convo.cli import server_file
from convo.cli.errors import CliError, ExitCode, data_dir_error, database_error, port_error
from convo.config import Settings
from convo.storage.base import Storage

logger = logging.getLogger("convo.cli")

_YOUNG_THRESHOLD = 7000  # allocations between collections of the youngest generation


async def preflight(settings: Settings) -> None:
    """Raise a CliError naming what to fix if the data dir or the database is unusable, or
    another server holds them."""
    from convo.errors import AnotherServerRunning
    from convo.host_lock import HostLock, describe_this_process
    from convo.services.storage_health import open_on_full_disk
    from convo.storage.at_rest import prepare_data_dir

    data_dir = settings.resolved_data_dir()
    try:
        prepare_data_dir(data_dir)
        await open_on_full_disk(data_dir, settings.disk_reserve_mb)  # room to open the database
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except Exception as exc:  # StorageError from prepare_data_dir, OSError from the probe
        raise data_dir_error(data_dir, exc) from exc
    holder = describe_this_process()
    lock = HostLock(data_dir / "server.lock", f"the data dir {data_dir}")
    try:
        lock.claim(holder)
        await _check_database(settings, holder)
    except AnotherServerRunning as exc:
        raise CliError(str(exc)) from exc
    finally:
        lock.release()


def open_configured_storage(settings: Settings) -> Storage:
    """The server's storage (with its secrets sealer), or a CliError saying what to fix."""
    from convo.storage import open_storage
    from convo.storage.at_rest import load_sealer

    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    try:
        sealer = load_sealer(settings.resolved_data_dir(), key)
    except Exception as exc:
        raise CliError(f"cannot load the secrets key (CONVO_SECRETS_KEY): {exc}") from exc
    try:
        return open_storage(settings.resolved_database_url(), sealer)
    except Exception as exc:  # a malformed URL: SQLAlchemy's ArgumentError and the like
        raise database_error(settings, exc) from exc


async def _check_database(settings: Settings, holder: str) -> None:
    from convo.errors import AnotherServerRunning

    storage = open_configured_storage(settings)
    try:
        await storage.claim_single_server(holder, shared=settings.cluster_mode)
        await storage.migrate()
    except AnotherServerRunning:
        raise
    except Exception as exc:
        raise database_error(settings, exc) from exc
    finally:
        await storage.aclose()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        if isinstance(exc, OSError):
            raise port_error(host, port, exc) from exc
        raise CliError(f"--port {port} is not a port number (0-65535)") from exc
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class ConvoServer(uvicorn.Server):
    """uvicorn's server that begins convo's graceful shutdown as the signal arrives, says how
    long it will wait, and stops at once on a second Ctrl-C."""

    def __init__(
        self, config: uvicorn.Config, begin_shutdown: Callable[[], object], grace_seconds: float
    ) -> None:
        super().__init__(config)
        self.begin_shutdown = begin_shutdown
        self.grace_seconds = grace_seconds
        self.freeze_after_startup = False  # `convo serve`: see startup()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            print(
                "convo: stopping now without waiting; running conversations resume on the "
                "next start",
                file=sys.stderr,
                flush=True,
            )
            os._exit(ExitCode.INTERRUPTED)
        if not self.should_exit:
            again = "; press Ctrl-C again to stop at once" if sig == signal.SIGINT else ""
            print(
                f"convo: stopping: waiting up to {self.grace_seconds:g} s for running commands "
                f"and conversations (CONVO_SHUTDOWN_GRACE_SECONDS){again}",
                file=sys.stderr,
                flush=True,
            )
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            logger.info("convo listening on %s", url_of(sockets[0]))
        # What start-up made (modules, the app, its schemas: most of the heap) lives as long
        # as the server: out of the collector's reach, a full collection walks only what was
        # made since. Under load (100 conversations running) full collections had stopped
        # the event loop for up to 350 ms each. Only for a server that owns its process.
        # `convo serve` turned the collector off for the start-up: on again here.
        if self.freeze_after_startup:
            gc.freeze()
            # The youngest generation is collected after 7,000 net allocations instead of
            # 700: a request's or a step's short-lived objects then mostly die before a
            # collection sees them, instead of being promoted to the old generations, whose
            # growth is what triggers a full collection. With 200 conversations running,
            # full collections (200-400 ms each, about 15 per run of bench.load) stopped
            # happening, and the time spent collecting fell by about two thirds.
            gc.set_threshold(_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
            gc.enable()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.begin_shutdown()
        await super().shutdown(sockets)


def make_server(
    settings: Settings, overrides: Overrides | None = None, *, debug: bool = False
) -> ConvoServer:
    asgi_app = create_asgi_app(settings, overrides)
    config = uvicorn.Config(
        asgi_app,
        log_config=None,  # convo's logging: no uvicorn banner lines at INFO
        log_level=logging.DEBUG if debug else logging.WARNING,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
    )
    fastapi = fastapi_app(asgi_app)
    return ConvoServer(config, lambda: begin_shutdown(fastapi), settings.shutdown_grace_seconds)


class EmbeddedServer:
    """A convo server in a thread of this process, on a free port of 127.0.0.1."""

    def __init__(self, settings: Settings, overrides: Overrides | None = None) -> None:
        self.settings = settings
        self.overrides = overrides
        self.url = ""
        self._server: ConvoServer | None = None
        self._thread: threading.Thread | None = None
        self._record: server_file.ServerRecord | None = None
        self._failure: BaseException | None = None

    async def start(self, wait_seconds: float = 60.0) -> str:
        await preflight(self.settings)
        sock = bind("127.0.0.1", 0)
        self.url = url_of(sock)
        self._server = make_server(self.settings, self.overrides)
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name="convo-embedded-server", daemon=True
        )
        self._thread.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while not self._server.started:
            if not self._thread.is_alive() or loop.time() > deadline:
                detail = f": {self._failure}" if self._failure else ""
                raise CliError(f"the embedded convo server did not start{detail}")
            await asyncio.sleep(0.02)
        self._record = server_file.ServerRecord(self.url, os.getpid())
        server_file.write(self.settings.resolved_data_dir(), self._record)
        return self.url

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            asyncio.run(self._server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by start() or stop()
            self._failure = exc
        finally:
            sock.close()

    async def stop(self) -> None:
        if self._record is not None:
            server_file.remove(self.settings.resolved_data_dir(), self._record)
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        await asyncio.to_thread(self._thread.join, self.settings.shutdown_grace_seconds + 10)
