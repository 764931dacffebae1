"""How truthful a resume is after kill -9: ``python -m bench.resume_truth [kills]``.

One conversation on a real ``convo serve`` (SQLite, process runtime) runs 60 steps, each a
command appending its own line to ``steps.log`` in the workspace. The server is killed with
SIGKILL at random moments and started again, ``kills`` times. At the end every ``run``
action's result is compared with the file: an "interrupted" result for a command whose line
is there is a false report (the command had completed); a line written twice is a command
run twice; a missing line is a step lost.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.harness import PYTHON, ConvoServer, base_env

STEPS = 60


async def _llm(workdir: Path) -> tuple[asyncio.subprocess.Process, str]:
    script = workdir / "script.json"
    steps = [
        {"tool": "execute_bash", "arguments": {"command": f"echo step-{i} >> steps.log"}}
        for i in range(STEPS)
    ]
    finish = {"tool": "finish", "arguments": {"message": "done"}}
    script.write_text(
        json.dumps({"steps": steps, "when_exhausted": finish, "per_conversation": True})
    )
    process = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "convo.llm.scripted_server", "--port", "0", "--script", str(script),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=base_env(),
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    return process, line.decode().split("listening on ", 1)[1].strip()


async def _events(base_url: str, conversation_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        while True:
            page = await client.get(
                f"/api/conversations/{conversation_id}/events",
                params={"start_id": len(events), "limit": 100},
            )
            body = page.json()
            events.extend(body["events"])
            if not body["has_more"]:
                return events


async def measure(kills: int) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="convo-resume-truth-") as tmp:
        workdir = Path(tmp)
        llm, llm_url = await _llm(workdir)
        settings = {
            "data_dir": str(workdir / "data"), "llm_model": "openai/scripted",
            "llm_base_url": llm_url, "llm_api_key": "bench-key", "llm_num_retries": "0",
            "runtime": "process", "reconcile_interval_seconds": "1",
            "min_free_disk_mb": "0",
            # no condensation: the scripted server counts a conversation's answers in the
            # request, and a condensed request shows fewer of them
            "condense_after_events": "100000",
        }  # fmt: skip
        server = ConvoServer(workdir, settings)
        try:
            await server.start()
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                created = await client.post("/api/conversations", json={"initial_user_msg": "go"})
            conversation_id = created.json()["conversation_id"]
            log = workdir / "data" / "workspaces" / conversation_id / "steps.log"
            rng = random.Random(11)
            done = 0
            for _ in range(kills):
                await asyncio.sleep(rng.uniform(0.05, 0.6))
                events = await _events(server.base_url, conversation_id)
                if any(e.get("action") == "finish" for e in events):
                    break
                await server.kill()
                await server.start()
                done += 1
                print(f"kill {done}: {len(events)} events", file=sys.stderr, flush=True)
            for _ in range(300):
                events = await _events(server.base_url, conversation_id)
                if any(e.get("action") == "finish" for e in events):
                    break
                await asyncio.sleep(0.2)
            lines = log.read_text().splitlines() if log.exists() else []
        finally:
            await server.terminate()
            llm.terminate()
            await llm.wait()
    return _tally(events, lines, done)


def _tally(events: list[dict[str, Any]], lines: list[str], kills: int) -> dict[str, int]:
    interrupted = false_reports = 0
    for action in (e for e in events if e.get("action") == "run"):
        step = str(action["args"]["command"]).split()[1]
        results = [e for e in events if e.get("cause") == action["id"]]
        if any("interrupted" in str(r.get("content", "")) for r in results):
            interrupted += 1
            false_reports += step in lines
    return {
        "kills": kills,
        "interrupted results": interrupted,
        "interrupted although completed": false_reports,
        "commands run twice": len(lines) - len(set(lines)),
        "steps never run": STEPS - len(set(lines)),
    }


def main() -> None:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 33
    figures = asyncio.run(measure(kills))
    for name, value in figures.items():
        print(f"{name:32} {value}")


if __name__ == "__main__":
    main()
