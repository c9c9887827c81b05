"""The server-sent events parser."""

from __future__ import annotations

from typing import List, Optional

import pytest

from vexil._sse import EventTooLarge, SseEvent, SseParser


def parse(chunks: List[bytes], max_bytes: int = 1024) -> List[SseEvent]:
    parser = SseParser(max_bytes)
    out: List[SseEvent] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def ev(event: str, data: str, id_: Optional[str]) -> SseEvent:
    return SseEvent(event, data, id_)


def test_named_events_with_ids_and_comments() -> None:
    text = b': connected\n\nevent: put\nid: 7\ndata: {"version":7}\n\n:heartbeat\n\nevent: patch\nid: 8\ndata: {}\n\n'
    assert parse([text]) == [ev("put", '{"version":7}', "7"), ev("patch", "{}", "8")]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_every_line_ending_and_any_split_give_the_same_events(ending: str) -> None:
    data = "event: patch\nid: 3\ndata: a\ndata: b\n\ndata:c\n\n".replace("\n", ending).encode()
    expected = [ev("patch", "a\nb", "3"), ev("message", "c", "3")]
    for split in range(len(data) + 1):
        assert parse([data[:split], data[split:]]) == expected, split
    assert parse([data[i : i + 1] for i in range(len(data))]) == expected


def test_an_event_cut_before_its_blank_line_is_not_dispatched() -> None:
    parser = SseParser(1024)
    assert parser.feed(b'event: patch\nid: 9\ndata: {"key":') == []
    assert parser.in_event()
    assert parser.feed(b'"x"}\n') == []
    assert parser.feed(b"\n") == [ev("patch", '{"key":"x"}', "9")]
    assert not parser.in_event()


def test_field_details() -> None:
    text = "\ufeffdata\nid: 1\n\nevent: lonely\n\nid: 2\0\nretry: 10\nfoo: bar\ndata:x\n\n".encode()
    assert parse([text]) == [ev("message", "", "1"), ev("message", "x", "1")]
    assert parse([b"data: a\xffb\n\n"])[0].data == "a\ufffdb"


def test_oversized_lines_and_events_are_refused() -> None:
    parser = SseParser(64)
    parser.feed(b"a" * 40)
    with pytest.raises(EventTooLarge):
        parser.feed(b"a" * 40)
    with pytest.raises(EventTooLarge):
        parse([b"data: 0123456789\n" * 10], 64)
    assert len(parse([f"data: {'x' * 58}\n\n".encode()], 64)) == 1
