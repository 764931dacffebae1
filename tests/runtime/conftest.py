"""Fixtures for the runtime tests: real shells in temporary workspaces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from convo.runtime.base import SandboxSpec
from convo.runtime.process import ProcessSandbox, ProcessSandboxFactory


@pytest.fixture
def spec(tmp_path: Path) -> SandboxSpec:
    return SandboxSpec(
        conversation_id="c1",
        workspace=tmp_path / "workspaces" / "c1",
        env={"CONVO_SPEC_VAR": "from-spec"},
        command_timeout_seconds=10.0,
        max_output_chars=1000,
    )


@pytest.fixture
async def sandbox(spec: SandboxSpec) -> AsyncIterator[ProcessSandbox]:
    box = ProcessSandboxFactory().create(spec)
    await box.start()
    try:
        yield box
    finally:
        await box.close()
