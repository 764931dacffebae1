"""Redis for the cluster tests: a redis-server of the test's own on a free 127.0.0.1 port
(never the machine's), which tests may stop and start again, and proxies they can cut."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from convo.api.app import Overrides
from convo.cluster.redis_node import RedisNode, RedisOptions
from tests.api.conftest import RunningServer, ServeFactory, make_settings, serve
from tests.faults.proxy import FaultProxy

# quick to notice a broken connection, so that the tests are quick too
FAST = RedisOptions(
    socket_timeout=1.0,
    connect_timeout=1.0,
    ping_interval=0.2,
    silent_after=0.8,
    ready_timeout=2,
    count_interval=0.1,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not installed")
        self._process = subprocess.Popen(
            [
                executable,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One server for a test module; tests that stop it use ``own_redis``."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


NodeFactory = Callable[..., RedisNode]


@pytest.fixture
async def nodes() -> AsyncIterator[NodeFactory]:
    """``nodes(url, node_id)``: a started RedisNode, closed after the test."""
    made: list[RedisNode] = []

    def make(url: str, node_id: str, options: RedisOptions = FAST) -> RedisNode:
        node = RedisNode(url, node_id, options)
        node.start()
        made.append(node)
        return node

    yield make
    for node in made:
        await node.aclose()


@pytest.fixture
async def proxies() -> AsyncIterator[Callable[[int], Awaitable[FaultProxy]]]:
    made: list[FaultProxy] = []

    async def make(port: int) -> FaultProxy:
        proxy = await FaultProxy("127.0.0.1", port).start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        await proxy.aclose()


@pytest.fixture
def server_factory(tmp_path: Path) -> ServeFactory:
    """A real server on 127.0.0.1, as in the API tests."""

    def factory(
        overrides: Overrides | None = None, **settings: Any
    ) -> AbstractAsyncContextManager[RunningServer]:
        return serve(make_settings(tmp_path, **settings), overrides)

    return factory
