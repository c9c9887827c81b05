/** Engine details the shared vectors do not pin: validation, regex translation, reuse. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { bucket, murmur3, RulesetError, Snapshot, type Ruleset } from "../src/engine/index.js";
import { compileRegex } from "../src/engine/regex.js";
import { boolFlag } from "./mock.js";

test("murmur3 hashes UTF-8 bytes, including astral characters and lone surrogates", () => {
  // Reference values of MurmurHash3 x86_32, seed 0.
  assert.equal(murmur3(""), 0);
  assert.equal(murmur3("my-flag.user-1"), 3983679288);
  assert.equal(murmur3("."), 2941713443);
  // A lone surrogate hashes like U+FFFD, as TextEncoder would encode it.
  assert.equal(murmur3("a\ud800b"), murmur3("a\ufffdb"));
  const astral = "😀.x";
  const bytes = new TextEncoder().encode(astral);
  assert.equal(bytes.length, 6);
  assert.equal(bucket("😀", "x"), bucket("😀", "x"));
  assert.ok(bucket("my-flag", "user-1") === 92752);
});

test("an invalid ruleset lists every problem with its path", () => {
  const bad = {
    version: 1,
    flags: {
      a: { ...boolFlag(), off_variation: "nope" },
      b: { ...boolFlag(), prerequisites: [{ flag: "missing", variations: ["on"] }] },
      c: { ...boolFlag(), rules: [{ clauses: [{ attribute: "x", op: "lt", values: ["1"] }], serve: { variation: "on" } }] },
      d: { ...boolFlag(), fallthrough: { rollout: { variations: [{ variation: "on", weight: 5 }] } } },
    },
  } as unknown as Ruleset;
  assert.throws(
    () => Snapshot.compile(bad),
    (e: unknown) => {
      assert.ok(e instanceof RulesetError);
      const paths = e.problems.map((p) => p.path);
      assert.deepEqual(paths, [
        "flags.a.off_variation",
        "flags.b.prerequisites[0].flag",
        "flags.c.rules[0].clauses[0].values[0]",
        "flags.d.fallthrough.rollout.variations",
      ]);
      assert.match(e.message, /unknown variation 'nope'/);
      return true;
    },
  );
});

test("prerequisite and segment cycles are refused", () => {
  const cyclic = {
    flags: {
      a: { ...boolFlag(), prerequisites: [{ flag: "b", variations: ["on"] }] },
      b: { ...boolFlag(), prerequisites: [{ flag: "a", variations: ["on"] }] },
    },
    segments: {
      s: { rules: [{ clauses: [{ op: "in_segment", values: ["t"] }] }] },
      t: { rules: [{ clauses: [{ op: "in_segment", values: ["s"] }] }] },
    },
  } as unknown as Ruleset;
  assert.throws(() => Snapshot.compile(cyclic), /prerequisite cycle: a → b → a[\s\S]*segment cycle: s → t → s/);
});

test("Rust regex syntax is translated where JavaScript differs", () => {
  assert.ok(compileRegex("^\\d+$", false).test("١٢٣"), "\\d is Unicode-aware");
  assert.ok(compileRegex("^\\w+$", false).test("héllo"), "\\w is Unicode-aware");
  assert.ok(compileRegex("^a.c$", false).test("a\rc"), ". matches \\r");
  assert.ok(!compileRegex("^a.c$", false).test("a\nc"), ". does not match \\n");
  assert.ok(compileRegex("(?i)^abc$", false).test("ABC"), "leading (?i)");
  assert.ok(compileRegex("^(?P<year>\\d{4})-", false).test("2026-01"), "(?P<name>)");
  assert.ok(compileRegex("\\Aab\\z", false).test("ab"));
  assert.ok(compileRegex("a\\-b\\#", false).test("a-b#"), "escaped punctuation");
  assert.ok(compileRegex("[]a]", false).test("]"), "] first in a class");
  assert.ok(compileRegex("\\x{e9}", false).test("é"));
  assert.ok(compileRegex("^\\pL+$", false).test("abc"));
  assert.ok(compileRegex("^ABC", true).test("abcd"), "case_insensitive");
  assert.throws(() => compileRegex("[a-z&&[^aeiou]]", false), "class set operations do not translate");
});

test("a pattern JavaScript cannot run never matches and is reported, the rest works", () => {
  const ruleset = {
    flags: {
      f: {
        ...boolFlag(),
        fallthrough: { variation: "off" },
        rules: [
          { clauses: [{ attribute: "s", op: "matches", values: ["[a-z&&[^aeiou]]", "^x"] }], serve: { variation: "on" } },
        ],
      },
    },
  } as unknown as Ruleset;
  const snap = Snapshot.compile(ruleset);
  assert.equal(snap.warnings.length, 1);
  assert.equal(snap.warnings[0]!.path, "flags.f.rules[0].clauses[0].values[0]");
  assert.equal(snap.evaluate("f", { s: "xyz" }, 0).detail.variation, "on");
  assert.equal(snap.evaluate("f", { s: "b" }, 0).detail.variation, "off");
});

test("results are frozen and shared, and inputs are left untouched", () => {
  const def = { type: "json", variations: [{ key: "a", value: { limits: [1, 2] } }], enabled: true, off_variation: "a", fallthrough: { variation: "a" } };
  const snap = Snapshot.compile({ flags: { j: def } } as unknown as Ruleset);
  const first = snap.evaluate("j", {}, 0);
  assert.equal(first, snap.evaluate("j", { targetingKey: "x" }, 0), "the same outcome object");
  assert.ok(Object.isFrozen(first.detail.value));
  assert.throws(() => ((first.detail.value as { limits: number[] }).limits as number[]).push(3));
  assert.ok(!Object.isFrozen(def.variations[0]!.value), "the caller's definition is not frozen");
  assert.equal(first.openFeatureReason, "STATIC");
});

test("unchanged flags are reused when a ruleset is recompiled", () => {
  const one = boolFlag();
  const two = boolFlag({ enabled: false });
  const a = Snapshot.compile({ version: 1, flags: { one, two } } as unknown as Ruleset);
  const b = Snapshot.compile({ version: 2, flags: { one: { ...one }, two: { ...two, enabled: true } } } as unknown as Ruleset, a);
  assert.equal(b.evaluate("one", {}, 0), a.evaluate("one", {}, 0), "equal definition: same compiled flag");
  assert.notEqual(b.evaluate("two", {}, 0), a.evaluate("two", {}, 0));
  assert.equal(b.evaluate("two", {}, 0).detail.reason.kind, "FALLTHROUGH");
  // A reused flag's references are still checked against the new ruleset.
  const withPrereq = boolFlag({ prerequisites: [{ flag: "one", variations: ["on"] }] });
  const c = Snapshot.compile({ flags: { one, p: withPrereq } } as unknown as Ruleset);
  assert.throws(() => Snapshot.compile({ flags: { p: withPrereq } } as unknown as Ruleset, c), /unknown flag 'one'/);
});

test("attribute lookup never reads inherited properties", () => {
  const ruleset = {
    flags: {
      f: { ...boolFlag(), fallthrough: { variation: "off" }, rules: [{ clauses: [{ attribute: "constructor", op: "exists" }], serve: { variation: "on" } }] },
    },
  } as unknown as Ruleset;
  const snap = Snapshot.compile(ruleset);
  assert.equal(snap.evaluate("f", {}, 0).detail.variation, "off");
  assert.equal(snap.evaluate("f", { constructor: "x" }, 0).detail.variation, "on");
});

test("OpenFeature reasons follow the server's mapping", () => {
  const snap = Snapshot.compile({
    flags: {
      s: boolFlag(),
      off: boolFlag({ enabled: false }),
      t: boolFlag({ targets: [{ variation: "off", values: ["u1"] }] }),
      r: boolFlag({ fallthrough: { rollout: { variations: [{ variation: "on", weight: 100000 }, { variation: "off", weight: 0 }] } } }),
    },
  } as unknown as Ruleset);
  assert.equal(snap.evaluate("s", {}, 0).openFeatureReason, "STATIC");
  assert.equal(snap.evaluate("off", {}, 0).openFeatureReason, "DISABLED");
  assert.equal(snap.evaluate("t", { targetingKey: "u1" }, 0).openFeatureReason, "TARGETING_MATCH");
  assert.equal(snap.evaluate("t", { targetingKey: "u2" }, 0).openFeatureReason, "DEFAULT");
  assert.equal(snap.evaluate("r", { targetingKey: "u2" }, 0).openFeatureReason, "SPLIT");
  assert.equal(snap.evaluate("r", {}, 0).openFeatureReason, "ERROR");
  assert.equal(snap.evaluate("nope", {}, 0).detail.reason.error_code, "FLAG_NOT_FOUND");
});
