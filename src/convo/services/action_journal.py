"""What convo knows about each conversation's actions in flight, for a truthful resume.

A command can finish and the server die (or lose its database) before the observation
reporting it is stored. The journal keeps, per conversation, the id of the last action
whose command was started and the results not yet stored, in memory and in a file of the
data dir (``results/<conversation id>.json``, outside every workspace, so the agent cannot
forge it). It is written when a command starts and when its result comes back, before the
observation is appended. When the loop resumes, an action left without an observation is
given (``JournalView``):

- its journaled result, when its command had finished;
- its exit status, when its command had ended but its result had not come back (the shell
  writes each command's status to a file of the workspace the moment it ends; the journal
  keeps what that file held when the action started);
- "interrupted", when its command had started and had not ended;
- a run now, when its command had never started (stored, then the loop ended).

In cluster mode an entry also keeps the lease token its loop wrote under, and it counts only
for the next loop under the very next token: a conversation that comes back to this node after
another node ran it (and may have started commands of its own) finds its old entry stale, and
an action left without an observation is then cut off, never run again.

The file holds observations as stored: with the conversation's secrets masked. A failed
write (full disk) is not fatal: the copy in memory still covers a loop that lost its
database; only a crash at that moment loses what it held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convo.agent.recovery import JournalView
from convo.domain.events import Event
from convo.runtime.exit_record import exit_status_since

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    started: int | None = None  # the last action whose command was started
    results: dict[int, Event] = field(default_factory=dict)  # action id -> unstored result
    exit_record: str = ""  # the shell's exit record as it was when ``started`` started
    token: int | None = None  # the lease token of the loop that wrote it (cluster mode)

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "results": {str(k): v.to_wire() for k, v in self.results.items()},
            "exit_record": self.exit_record,
            "token": self.token,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Entry:
        results = {int(k): Event.from_wire(v) for k, v in (data.get("results") or {}).items()}
        started = data.get("started")
        record = str(data.get("exit_record") or "")
        token = data.get("token")
        return cls(
            None if started is None else int(started),
            results,
            record,
            None if token is None else int(token),
        )


class ActionJournal:
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._memory: dict[str, _Entry] = {}

    def _path(self, conversation_id: str) -> Path:
        return self._dir / f"{conversation_id}.json"

    def _entry(self, conversation_id: str, token: int | None) -> _Entry:
        entry = self._memory.get(conversation_id)
        if entry is None or entry.token != token:  # a new loop's: the old one is history
            entry = self._memory[conversation_id] = _Entry(token=token)
        return entry

    async def started(
        self,
        conversation_id: str,
        action_id: int,
        exit_record: str = "",
        *,
        token: int | None = None,
    ) -> None:
        """The action is stored and its command about to start; ``exit_record`` is the
        shell's record of the last command's end (``runtime.shell.read_exit_record``) now."""
        entry = self._entry(conversation_id, token)
        entry.started = action_id
        entry.exit_record = exit_record
        await self._save(conversation_id, entry)

    async def record(
        self, conversation_id: str, observation: Event, *, token: int | None = None
    ) -> None:
        """Keep ``observation`` (its ``cause`` is the action it answers) before storing it."""
        if observation.cause is None:
            return
        entry = self._entry(conversation_id, token)
        entry.results[observation.cause] = observation
        await self._save(conversation_id, entry)

    def stored(self, conversation_id: str, observation: Event) -> None:
        """The observation is stored: its copy is no longer needed (a stale one in the file
        is harmless: an action with a stored observation is never recovered)."""
        entry = self._memory.get(conversation_id)
        if entry is not None and observation.cause is not None:
            entry.results.pop(observation.cause, None)

    async def view(
        self, conversation_id: str, exit_record: str = "", *, token: int | None = None
    ) -> JournalView | None:
        """What is known of the conversation's last actions, for a loop starting under
        ``token``; None when nothing is (or what is known is stale: see the module's doc).
        ``exit_record``: the shell's record now; if it changed since the last action was
        started, that action's command ended, with the status it holds."""
        entry = self._memory.get(conversation_id)
        if entry is None:
            entry = await asyncio.to_thread(self._read, conversation_id)
        if entry is None:
            return None
        if entry.token is not None and token is not None and token != entry.token + 1:
            return None  # another node held the lease since this node's loop wrote it
        return JournalView(
            started=entry.started,
            results=dict(entry.results),
            exit_status=exit_status_since(entry.exit_record, exit_record),
        )

    def forget(self, conversation_id: str) -> None:
        """The conversation is deleted: drop its journal."""
        self._memory.pop(conversation_id, None)
        with contextlib.suppress(OSError):
            self._path(conversation_id).unlink()

    # --- the file ------------------------------------------------------------------------
    async def _save(self, conversation_id: str, entry: _Entry) -> None:
        # Written here, in the loop's thread (a small file, no fsync: a killed server's
        # writes are in the page cache), not through a worker thread: under load the pool's
        # queue held a finished command's result back long enough for a kill -9 to come
        # first, and the resumed agent was told "interrupted" about a command that had run.
        data = json.dumps(entry.to_json())
        try:
            self._write(conversation_id, data)
        except OSError as exc:
            logger.debug("could not write the action journal of %s: %s", conversation_id, exc)

    def _write(self, conversation_id: str, data: str) -> None:
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(conversation_id)
        partial = path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(data)
        os.replace(partial, path)

    def _read(self, conversation_id: str) -> _Entry | None:
        try:
            return _Entry.from_json(json.loads(self._path(conversation_id).read_text()))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            if not isinstance(exc, FileNotFoundError):
                logger.warning("unreadable action journal of %s: %s", conversation_id, exc)
            return None
