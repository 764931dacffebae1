"""Following a conversation live until the agent ends its turn, and Ctrl-C as a clean stop.

:func:`follow` reads the SSE stream from an event id and returns how the turn ended once
the agent reaches a resting state (finished, error, stopped, awaiting input) after the
events that existed when it began; a dropped stream is resumed from the last event seen.
:func:`follow_or_stop` runs it with Ctrl-C handled: the first stops the conversation and
waits for the stop, a second leaves at once.
"""

from __future__ import annotations

import asyncio
import signal
import time

from convo.aio import cancel_and_await
from convo.cli.client import ConvoClient, ServerUnreachable
from convo.cli.errors import ExitCode
from convo.cli.render import Printer

RESTING: dict[str, ExitCode] = {
    "finished": ExitCode.FINISHED,
    "error": ExitCode.ERROR,
    "rejected": ExitCode.ERROR,
    "stopped": ExitCode.STOPPED,
    "paused": ExitCode.STOPPED,
    "awaiting_user_input": ExitCode.AWAITING_INPUT,
    "awaiting_user_confirmation": ExitCode.AWAITING_INPUT,
}
ENDINGS = {
    ExitCode.FINISHED: "finished",
    ExitCode.ERROR: "ended in error",
    ExitCode.STOPPED: "stopped",
    ExitCode.AWAITING_INPUT: "awaiting your input",
    ExitCode.INTERRUPTED: "left",
}
MAX_RECONNECTS = 5


async def follow(
    client: ConvoClient,
    conversation_id: str,
    printer: Printer,
    *,
    after: int = -1,
    settled_after: int = -1,
    running: bool = True,
) -> ExitCode:
    """Show events after ``after`` until the agent rests at or past event ``settled_after``.

    ``running=False`` (a conversation with no loop): end once the stored events are shown.
    """
    last_id = after
    reconnects = 0
    while True:
        async for message in client.stream(conversation_id, last_id):
            if message.kind == "resume":
                break  # fell behind: reconnect after the last event shown
            printer.show(message.kind, message.data)
            if message.event_id is None:
                continue
            last_id = message.event_id
            reconnects = 0
            if last_id < settled_after:
                continue
            state = printer.tally.state
            if state in RESTING:
                return RESTING[state]
            if not running:
                return ExitCode.STOPPED
        reconnects += 1
        if reconnects > MAX_RECONNECTS or not await client.alive():
            raise ServerUnreachable(client.base_url, "the server ended the event stream")
        await asyncio.sleep(min(2.0, 0.2 * reconnects))


async def follow_or_stop(
    client: ConvoClient,
    conversation_id: str,
    printer: Printer,
    *,
    after: int = -1,
    settled_after: int = -1,
    running: bool = True,
    stop_on_interrupt: bool = True,
) -> ExitCode:
    """:func:`follow` and the closing summary; Ctrl-C stops the conversation (or, without
    ``stop_on_interrupt``, only stops following it)."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    interrupts = asyncio.Queue[None]()
    loop.add_signal_handler(signal.SIGINT, interrupts.put_nowait, None)
    try:
        code = await _race(
            follow(
                client,
                conversation_id,
                printer,
                after=after,
                settled_after=settled_after,
                running=running,
            ),
            interrupts,
        )
        if code is None and stop_on_interrupt:
            code = await _stop(client, conversation_id, printer, interrupts)
        elif code is None:
            code = ExitCode.INTERRUPTED
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        printer.close()
    printer.summary(conversation_id, ENDINGS.get(code, "ended"), time.monotonic() - started)
    return code


async def _race(work: object, interrupts: asyncio.Queue[None]) -> ExitCode | None:
    """The work's result, or None if Ctrl-C came first (the work is then cancelled)."""
    task = asyncio.ensure_future(work)  # type: ignore[call-overload]
    interrupted = asyncio.ensure_future(interrupts.get())
    try:
        done, _ = await asyncio.wait({task, interrupted}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, interrupted):
            if not pending.done():
                await cancel_and_await(pending)
    if task in done:
        result: ExitCode = task.result()
        return result
    return None


async def _stop(
    client: ConvoClient, conversation_id: str, printer: Printer, interrupts: asyncio.Queue[None]
) -> ExitCode:
    printer.note(
        f"stopping conversation {conversation_id} (press Ctrl-C again to leave without waiting)"
    )

    async def stop() -> ExitCode:
        await client.stop(conversation_id)
        return ExitCode.STOPPED

    code = await _race(stop(), interrupts)
    if code is None:
        printer.note(
            f"left without waiting: the conversation may still be running; "
            f"`convo stop {conversation_id}` stops it"
        )
        return ExitCode.INTERRUPTED
    return code
