/** The server-sent events parser. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { SseParser, SseTooLarge, type SseEvent } from "../src/internal/sse.js";

function parse(chunks: string[], max = 1024): SseEvent[] {
  const p = new SseParser(max);
  const out: SseEvent[] = [];
  for (const c of chunks) p.feed(c, (e) => out.push(e));
  return out;
}

test("named events with ids; comments skipped", () => {
  const text = ': heartbeat\n\nevent: put\nid: 7\ndata: {"version":7}\n\n:heartbeat\n\nevent: patch\nid: 8\ndata: {}\n\n';
  assert.deepEqual(parse([text]), [
    { event: "put", data: '{"version":7}', id: "7" },
    { event: "patch", data: "{}", id: "8" },
  ]);
});

test("every line ending and every split point give the same events", () => {
  const lf = "event: patch\nid: 3\ndata: a\ndata: b\n\ndata:c\n\n";
  const expected = [
    { event: "patch", data: "a\nb", id: "3" },
    { event: "message", data: "c", id: "3" },
  ];
  for (const ending of ["\n", "\r\n", "\r"]) {
    const text = lf.replaceAll("\n", ending);
    for (let split = 0; split <= text.length; split++) {
      assert.deepEqual(parse([text.slice(0, split), text.slice(split)]), expected, `${JSON.stringify(ending)} split at ${split}`);
    }
    assert.deepEqual(parse([...text]), expected, "one character at a time");
  }
});

test("an event cut before its blank line is not dispatched", () => {
  const p = new SseParser(1024);
  const out: SseEvent[] = [];
  p.feed('event: patch\nid: 9\ndata: {"key":', (e) => out.push(e));
  assert.equal(out.length, 0);
  assert.ok(p.inEvent());
  p.feed('"x"}\n', (e) => out.push(e));
  assert.equal(out.length, 0);
  p.feed("\n", (e) => out.push(e));
  assert.deepEqual(out, [{ event: "patch", data: '{"key":"x"}', id: "9" }]);
  assert.ok(!p.inEvent());
});

test("field details follow the specification", () => {
  const text = "\ufeffdata\nid: 1\n\nevent: lonely\n\nid: 2\0\nretry: 10\nfoo: bar\ndata:x\n\n";
  assert.deepEqual(parse([text]), [
    { event: "message", data: "", id: "1" },
    { event: "message", data: "x", id: "1" },
  ]);
});

test("oversized lines and events are refused", () => {
  const p = new SseParser(64);
  p.feed("a".repeat(40), () => {});
  assert.throws(() => p.feed("a".repeat(40), () => {}), SseTooLarge);
  assert.throws(() => parse(["data: 0123456789\n".repeat(10)], 64), SseTooLarge);
  assert.equal(parse([`data: ${"x".repeat(58)}\n\n`], 64).length, 1);
});
