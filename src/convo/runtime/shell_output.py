"""What a persistent shell printed: a bounded buffer of its output, and the marker each
command's end prints (``runtime.shell``'s protocol).

The buffer keeps a head, a tail and a count of the characters that fell between, so a
command that prints gigabytes costs a few times ``keep_bytes`` of memory; the text a command
returns is clipped in the middle to the caller's limit, and never splits a UTF-8 character.
The marker line is written so that it never appears verbatim in the shell's input: a command
that echoes its own input cannot fake its end.
"""

from __future__ import annotations

import re
from typing import NamedTuple


# --- output capture --------------------------------------------------------------------
def _char_start(buf: bytearray, index: int) -> int:
    while 0 < index < len(buf) and buf[index] & 0xC0 == 0x80:  # UTF-8 continuation byte
        index -= 1
    return index


def clip_middle(head: str, dropped: int, body: str, limit: int) -> str:
    """``head + <dropped chars> + body``, cut in the middle to ``limit`` characters."""
    if not dropped and len(body) <= limit:
        return body
    front_src, back_src = (head, body) if dropped else (body, body)
    front = front_src[: limit // 2]
    back = back_src[len(back_src) - (limit - len(front)) :] if limit > len(front) else ""
    omitted = len(head) + dropped + len(body) - len(front) - len(back)
    return f"{front}\n[... {omitted} characters of output omitted ...]\n{back}"


class Marker(NamedTuple):
    start: int
    end: int
    exit_code: int
    cwd: str


class OutputBuffer:
    """What the shell printed, bounded: a head, a tail and a count of what fell between."""

    def __init__(self, keep_bytes: int) -> None:
        self.keep = keep_bytes
        self.head = bytearray()
        self.body = bytearray()
        self.dropped = 0  # characters

    def feed(self, data: bytes) -> None:
        self.body += data
        if len(self.body) <= 3 * self.keep:
            return
        if len(self.head) < self.keep:
            cut = _char_start(self.body, self.keep - len(self.head))
            self.head += self.body[:cut]
            del self.body[:cut]
        cut = _char_start(self.body, len(self.body) - self.keep)
        self.dropped += len(self.body[:cut].decode("utf-8", "replace"))
        del self.body[:cut]

    def find_marker(self, token: bytes) -> Marker | None:
        pattern = rb"\n__CONVO_" + re.escape(token) + rb"__ (-?\d+) ([^\n]*)\n"
        found = re.search(pattern, self.body)
        if found is None:
            return None
        cwd = found.group(2).decode("utf-8", "replace")
        return Marker(found.start(), found.end(), int(found.group(1)), cwd)

    def take(self, limit: int, end: int | None = None, consume: int | None = None) -> str:
        """Text up to ``end`` (default: all), clipped to ``limit``; drop through ``consume``."""
        end = len(self.body) if end is None else end
        body = self.body[:end]
        if body.endswith(b"\n"):
            body = body[:-1]
        head, rest = self.head.decode("utf-8", "replace"), body.decode("utf-8", "replace")
        text = clip_middle(head, self.dropped, rest, limit)
        del self.body[: end if consume is None else consume]
        self.head.clear()
        self.dropped = 0
        return text


def marker_line(token: bytes, status: str) -> str:
    """The line that prints a command's end marker: token, ``status`` and ``$PWD``."""
    return f"builtin printf '\\n%s%s %s %s\\n' __CONVO_ {token.decode()}__ {status} \"$PWD\"\n"
