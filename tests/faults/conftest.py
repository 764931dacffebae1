"""Fault tests reuse the agent test kit (its harness and fake sandbox)."""

from tests.agent.conftest import make_harness, sandbox

__all__ = ["make_harness", "sandbox"]
