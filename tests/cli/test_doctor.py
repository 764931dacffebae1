"""``convo doctor``: one line per check, each ok or what to do; the LLM gets a real call."""

from __future__ import annotations

from pathlib import Path

from bench.harness import ScriptedLLMProcess

from tests.cli.conftest import cli_env, convo

CHECKS = ("disk", "database", "LLM", "sandbox", "network", "server")


def _lines(stdout: str) -> dict[str, str]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert all(line.startswith(("ok  ", "fix ")) for line in lines), stdout
    return {line.split()[1]: line for line in lines}


async def test_doctor_with_the_demo_model(data_dir: Path) -> None:
    result = await convo("doctor", env=cli_env(data_dir, {"CONVO_LLM_MODEL": "demo"}))
    lines = _lines(result.stdout)
    assert set(lines) == set(CHECKS)
    assert lines["LLM"].startswith("ok  LLM       demo answered in")
    assert lines["database"].startswith("ok ")
    assert result.code == (0 if all(line.startswith("ok") for line in lines.values()) else 1)
    assert "Traceback" not in result.stderr and result.stderr == ""


async def test_doctor_says_what_to_do_when_the_llm_refuses_the_key(
    tmp_path: Path, data_dir: Path
) -> None:
    llm = await ScriptedLLMProcess(
        tmp_path / "llm", steps=[{"error": 401, "message": "invalid api key"}]
    ).start()
    try:
        env = cli_env(
            data_dir,
            {
                "CONVO_LLM_MODEL": "openai/scripted",
                "CONVO_LLM_BASE_URL": llm.base_url,
                "CONVO_LLM_API_KEY": "wrong-key-4d1c",
            },
        )
        result = await convo("doctor", env=env)
    finally:
        await llm.stop()
    lines = _lines(result.stdout)
    assert result.code == 1
    assert lines["LLM"].startswith("fix LLM")
    assert "CONVO_LLM_API_KEY" in lines["LLM"]
    assert "wrong-key-4d1c" not in result.stdout + result.stderr
