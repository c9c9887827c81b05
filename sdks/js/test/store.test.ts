/** The server client's store and stream cursor: affected flags, resumption, resyncs. */

import assert from "node:assert/strict";
import { test } from "node:test";

import type { FlagDef, Ruleset } from "../src/engine/index.js";
import type { SseEvent } from "../src/internal/sse.js";
import { Cursor } from "../src/server/cursor.js";
import { Store } from "../src/server/store.js";
import { boolFlag } from "./mock.js";

const flag = (extra: Record<string, unknown> = {}) => boolFlag(extra) as unknown as FlagDef;
const ev = (event: string, id: number, data: unknown): SseEvent => ({ event, id: String(id), data: JSON.stringify(data) });

test("changes reach dependents, and repeats are silent", () => {
  const store = new Store();
  const ruleset = {
    version: 1,
    flags: {
      base: flag(),
      child: flag({ prerequisites: [{ flag: "base", variations: ["on"] }] }),
      grandchild: flag({ prerequisites: [{ flag: "child", variations: ["on"] }] }),
      "seg-user": flag({ rules: [{ clauses: [{ op: "in_segment", values: ["outer"] }], serve: { variation: "on" } }] }),
      loner: flag(),
    },
    segments: { inner: { included: ["a"] }, outer: { rules: [{ clauses: [{ op: "in_segment", values: ["inner"] }] }] } },
  } as unknown as Ruleset;
  assert.equal(store.replace(ruleset).length, 5, "first load: every flag is new");
  assert.deepEqual(store.replace(ruleset), [], "same ruleset: nothing changed");
  const baseOff = flag({ enabled: false });
  assert.deepEqual(store.apply(2, [{ kind: "flag", key: "base", def: baseOff }]), ["base", "child", "grandchild"]);
  assert.deepEqual(store.apply(2, [{ kind: "flag", key: "base", def: { ...baseOff } }]), [], "a repeated patch");
  assert.deepEqual(store.apply(3, [{ kind: "segment", key: "inner", def: { included: ["b"] } }]), ["seg-user"]);
  assert.deepEqual(store.apply(4, [{ kind: "flag", key: "loner", def: null }]), ["loner"]);
  assert.equal(store.version, 4);
  assert.throws(() => store.apply(5, [{ kind: "flag", key: "base", def: null }]), /unknown flag 'base'/);
  assert.equal(store.version, 4, "an invalid change leaves everything as it was");
});

test("key order does not make a definition look changed", () => {
  const store = new Store();
  store.replace({ version: 1, flags: { a: flag() } });
  const reordered = Object.fromEntries(Object.entries(flag()).reverse()) as unknown as FlagDef;
  assert.deepEqual(store.apply(2, [{ kind: "flag", key: "a", def: reordered }]), []);
});

test("the cursor resumes from the last complete update and ignores repeats", () => {
  const store = new Store();
  const cursor = new Cursor();
  const put = { version: 5, flags: { a: flag(), b: flag() }, segments: {} };
  assert.deepEqual(cursor.handle(store, ev("put", 5, put)), { changed: ["a", "b"], version: 5 });
  assert.equal(cursor.confirmed, 5);
  const patchA = { kind: "flag", key: "a", version: 7, value: flag({ enabled: false }) };
  assert.deepEqual(cursor.handle(store, ev("patch", 7, patchA)), { changed: ["a"], version: 7 });
  assert.equal(cursor.confirmed, 5, "7 may be incomplete");
  cursor.reconnected();
  // The server repeats everything after 5: a (already applied, silent), then b.
  assert.deepEqual(cursor.handle(store, ev("patch", 7, patchA)), { changed: [], version: 7 });
  const patchB = { kind: "flag", key: "b", version: 7, value: flag({ enabled: false }) };
  assert.deepEqual(cursor.handle(store, ev("patch", 7, patchB)), { changed: ["b"], version: 7 });
  assert.deepEqual(cursor.handle(store, ev("delete", 8, { kind: "flag", key: "b", version: 8 })), { changed: ["b"], version: 8 });
  assert.equal(cursor.confirmed, 7);
  assert.equal(store.version, 8);
});

test("a change that needs the rest of its update waits for it", () => {
  const store = new Store();
  const cursor = new Cursor();
  cursor.handle(store, ev("put", 1, { version: 1, flags: { p: flag(), c: flag({ prerequisites: [{ flag: "p", variations: ["on"] }]}) } }));
  assert.deepEqual(cursor.handle(store, ev("delete", 2, { kind: "flag", key: "p", version: 2 })), { changed: [], version: 1 });
  assert.ok(cursor.waiting());
  assert.deepEqual(cursor.handle(store, ev("patch", 2, { kind: "flag", key: "c", version: 2, value: flag() })), { changed: ["c", "p"], version: 2 });
  assert.ok(!cursor.waiting());
});

test("inconsistencies ask for a resync; unknown events are skipped", () => {
  const store = new Store();
  let cursor = new Cursor();
  cursor.handle(store, ev("put", 1, { version: 1, flags: { p: flag(), c: flag({ prerequisites: [{ flag: "p", variations: ["on"] }]}) } }));
  cursor.handle(store, ev("delete", 2, { kind: "flag", key: "p", version: 2 }));
  const r = cursor.handle(store, ev("patch", 3, { kind: "flag", key: "c", version: 3, value: flag({ prerequisites: [{ flag: "p", variations: ["on"] }] }) }));
  assert.ok("resync" in r);
  cursor = new Cursor();
  cursor.loaded(10);
  assert.ok("resync" in cursor.handle(store, ev("patch", 9, { kind: "flag", key: "c", version: 9, value: flag() })));
  assert.ok("resync" in cursor.handle(store, ev("patch", 11, { kind: "flag" })));
  assert.ok("resync" in cursor.handle(store, ev("put", 12, { flags: 3 })));
  assert.ok("resync" in cursor.handle(store, ev("put", 0, { version: 0, flags: {} })), "older than held");
  assert.ok("resync" in cursor.handle(store, ev("refetch", 12, { version: 12 })));
  assert.ok(!("resync" in cursor.handle(store, ev("something-new", 12, {}))));
});
