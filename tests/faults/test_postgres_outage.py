"""PostgreSQL cut or stalled under ten working conversations, through a proxy the test controls.

A cut of 5 s is ridden out by the loops' write retries; a cut of 30 s and a stall of 30 s
outlast them (``CONVO_STORAGE_RETRY_SECONDS=8``): the loops end and the supervisor resumes
them once the database answers. Either way every conversation finishes by itself, with
gap-free ids, each step's action and observation stored once and each command run once;
``/health`` answers 503 during the fault, the API 503 with ``Retry-After``, and the log has
one line for the outage, no traceback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from bench.harness import ConvoServer
from sqlalchemy.engine import make_url

from tests.faults.proxy import FaultProxy
from tests.faults.scenario import (
    Fleet,
    during_fault,
    log_lines,
    scripted_llm,
    server_settings,
    wait_all_finished,
)
from tests.polling import wait_until
from tests.storage.conftest import fresh_postgres_database

pytestmark = pytest.mark.postgres


@dataclass
class Setup:
    fleet: Fleet
    proxy: FaultProxy


@pytest.fixture
async def setup(tmp_path: Path, postgres_url: str) -> AsyncIterator[Setup]:
    async with fresh_postgres_database(postgres_url) as direct_url:
        url = make_url(direct_url)
        proxy = await FaultProxy(url.host or "127.0.0.1", url.port or 5432).start()
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        async with scripted_llm() as llm:
            data_dir = tmp_path / "data"
            server = ConvoServer(
                tmp_path, server_settings(data_dir, llm.base_url, database_url=proxied)
            )
            try:
                await server.start()
                fleet = Fleet(server, data_dir)
                await fleet.create()
                await wait_until(fleet.all_working, 60, 0.1, "every conversation to be working")
                yield Setup(fleet, proxy)
            finally:
                proxy.restore()
                await server.terminate()
                await proxy.aclose()


async def _api_answers_503(fleet: Fleet) -> None:
    async with fleet.client() as client:
        response = await client.get("/api/conversations")
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0


async def _fault_then_finish(setup: Setup, kind: str, seconds: float) -> None:
    fleet, proxy = setup.fleet, setup.proxy
    proxy.cut() if kind == "cut" else proxy.stall()
    try:
        statuses = await during_fault(fleet, seconds, lambda: _api_answers_503(fleet))
    finally:
        proxy.restore()
    assert 503 in statuses, statuses
    await wait_all_finished(fleet, 120)
    await fleet.check_nothing_lost()
    async with httpx.AsyncClient(timeout=15) as client:
        assert (await client.get(f"{fleet.server.base_url}/health")).status_code == 200
    assert len(log_lines(fleet.server, "storage unavailable")) == 1
    assert log_lines(fleet.server, "Traceback") == []


@pytest.mark.timeout(150)
async def test_a_5_second_cut(setup: Setup) -> None:
    await _fault_then_finish(setup, "cut", 5)


@pytest.mark.timeout(200)
async def test_a_30_second_cut(setup: Setup) -> None:
    await _fault_then_finish(setup, "cut", 30)


@pytest.mark.timeout(200)
async def test_a_30_second_stall(setup: Setup) -> None:
    await _fault_then_finish(setup, "stall", 30)
