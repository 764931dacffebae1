"""The action journal in cluster mode: what a node journaled counts only for its own next
loop of the conversation, not after another node ran it (which may have started commands the
old entry knows nothing of: running them again would run them twice)."""

from __future__ import annotations

from pathlib import Path

from convo.domain.events import EventSource, message_action
from convo.services.action_journal import ActionJournal

CID = "0123456789abcdef0123456789abcdef"


async def test_an_entry_counts_for_the_next_lease_only(tmp_path: Path) -> None:
    journal = ActionJournal(tmp_path)
    await journal.started(CID, 7, token=4)
    view = await journal.view(CID, token=5)  # this node acquires it again, nobody in between
    assert view is not None and view.started == 7
    assert await journal.view(CID, token=6) is None  # another node held token 5 meanwhile

    restarted = ActionJournal(tmp_path)  # read back from the file
    view = await restarted.view(CID, token=5)
    assert view is not None and view.started == 7
    assert await restarted.view(CID, token=9) is None


async def test_a_new_loop_starts_a_new_entry(tmp_path: Path) -> None:
    journal = ActionJournal(tmp_path)
    result = message_action("done", EventSource.AGENT).model_copy(update={"cause": 3})
    await journal.started(CID, 3, token=1)
    await journal.record(CID, result, token=1)
    await journal.started(CID, 9, token=2)
    view = await journal.view(CID, token=3)
    assert view is not None and view.started == 9 and dict(view.results) == {}


async def test_without_tokens_as_on_one_server(tmp_path: Path) -> None:
    journal = ActionJournal(tmp_path)
    await journal.started(CID, 3)
    view = await ActionJournal(tmp_path).view(CID)
    assert view is not None and view.started == 3
