"""The README stays true: every setting is documented, with the commands it promises."""

from __future__ import annotations

from pathlib import Path

from convo.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_in_the_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`CONVO_{name.upper()}`" not in readme]
    assert missing == []


def test_the_run_and_test_commands_are_the_ones_ci_uses() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make serve" in readme and "make test" in readme
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")
