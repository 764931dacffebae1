"""Shared fixtures. Layer-specific fixtures live in each test folder's conftest."""

from __future__ import annotations

import os

import pytest

# litellm fetches a price map from the internet at import unless told to use its own copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

POSTGRES_URL = os.environ.get(
    "CONVO_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CONVO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def postgres_url() -> str:
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL
