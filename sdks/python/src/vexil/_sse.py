"""An incremental parser of ``text/event-stream`` (server-sent events): bytes in, whole
events out, bounded in the size of a line and of an event so that a broken server cannot
make the client buffer without limit."""

from __future__ import annotations

from typing import List, NamedTuple, Optional


class SseEvent(NamedTuple):
    event: str
    """The ``event:`` field; ``message`` when absent."""
    data: str
    """The ``data:`` lines joined with ``\\n``."""
    id: Optional[str]
    """The last event id in force when this event was dispatched."""


class EventTooLarge(Exception):
    pass


class SseParser:
    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._line = bytearray()
        self._after_cr = False
        self._at_start = True
        self._event = ""
        self._data: List[str] = []
        self._data_len = 0
        self._has_data = False
        self._last_id: Optional[str] = None

    def feed(self, chunk: bytes) -> List[SseEvent]:
        """Parses a chunk; returns the events it completed. Raises :class:`EventTooLarge`."""
        out: List[SseEvent] = []
        if self._at_start and chunk:
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            self._at_start = False
        if self._after_cr and chunk:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        start = 0
        n = len(chunk)
        while start < n:
            lf = chunk.find(b"\n", start)
            cr = chunk.find(b"\r", start)
            if lf < 0 and cr < 0:
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            self._push(chunk[start:end])
            line = bytes(self._line)
            self._line.clear()
            self._process(line, out)
            if chunk[end] == 13:  # \r
                if end + 1 < n:
                    start = end + 2 if chunk[end + 1] == 10 else end + 1
                else:
                    self._after_cr = True
                    start = n
            else:
                start = end + 1
        self._push(chunk[start:])
        return out

    def in_event(self) -> bool:
        """Whether an event was started but not completed."""
        return bool(self._line) or self._has_data or bool(self._event)

    def _push(self, part: bytes) -> None:
        if len(self._line) + len(part) > self._max:
            raise EventTooLarge(f"server-sent event larger than {self._max} bytes")
        self._line += part

    def _process(self, line: bytes, out: List[SseEvent]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line[:1] == b":":
            return  # a comment: the server's heartbeat
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        text = value.decode("utf-8", "replace")
        if name == b"event":
            self._event = text
        elif name == b"data":
            self._data_len += len(value) + 1
            if self._data_len > self._max:
                raise EventTooLarge(f"server-sent event larger than {self._max} bytes")
            self._data.append(text)
            self._has_data = True
        elif name == b"id" and "\0" not in text:
            self._last_id = text
        # `retry` is ignored: the client has its own backoff policy.

    def _dispatch(self, out: List[SseEvent]) -> None:
        event, self._event = self._event, ""
        if not self._has_data:
            return
        data = "\n".join(self._data)
        self._data = []
        self._data_len = 0
        self._has_data = False
        out.append(SseEvent(event or "message", data, self._last_id))
