"""``submit-feedback``: a user's rating of a conversation, kept on this server.

OpenHands posts the rating, with the whole trajectory, to a sharing service of its makers;
convo sends nothing anywhere. Each rating is one JSON line appended to
``<data dir>/feedback/<conversation id>.jsonl`` on the server that received it: its id, the
time, the polarity (``positive``/``negative``), the permission the user chose
(``public``/``private``), the email and client version they gave, and the id of the
conversation's last event at that moment (the trajectory rated is the events up to it,
which stay in the conversation's own log).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from convo.domain.conversation import utcnow


@dataclass(frozen=True)
class Feedback:
    polarity: str  # "positive" | "negative"
    permissions: str  # "public" | "private"
    email: str = ""
    version: str = ""


class FeedbackLog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = asyncio.Lock()

    def path(self, conversation_id: str) -> Path:
        return self.directory / f"{conversation_id}.jsonl"

    async def add(self, conversation_id: str, feedback: Feedback, last_event_id: int) -> str:
        """Store one rating durably; its id."""
        feedback_id = uuid.uuid4().hex
        record = {
            "feedback_id": feedback_id,
            "conversation_id": conversation_id,
            "created_at": utcnow().isoformat(),
            "last_event_id": last_event_id,
            **asdict(feedback),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, self.path(conversation_id), line)
        return feedback_id

    def _append(self, path: Path, line: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def read(self, conversation_id: str) -> list[dict[str, object]]:
        """The conversation's ratings, oldest first (blocking)."""
        try:
            text = self.path(conversation_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]
