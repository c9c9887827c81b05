/**
 * The shared evaluation vectors (spec/vectors/*.json, read in place): every case of every
 * file must give exactly the expected value, variation and reason, and every row of
 * hash.json the expected MurmurHash3 and bucket.
 */

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { bucketOfHash, murmur3, parseRfc3339, Snapshot } from "../src/engine/index.js";
import type { Context, Reason, Ruleset } from "../src/engine/index.js";
import { vectorsDir } from "./paths.js";

interface Case {
  name: string;
  flag: string;
  context: Context;
  now?: string;
  expected: { value: unknown; variation: string | null; reason: Reason };
}

const DEFAULT_NOW = "2026-01-01T00:00:00Z";
const dir = vectorsDir();
const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

test("the vectors directory has the expected files", () => {
  assert.ok(files.includes("hash.json"), `hash.json in ${dir}`);
  assert.ok(files.length >= 15, `expected at least 15 vector files in ${dir}, found ${files.length}`);
});

for (const file of files) {
  const doc = JSON.parse(readFileSync(join(dir, file), "utf8")) as {
    ruleset?: Ruleset;
    cases?: Case[];
    rows?: { salt: string; value: string; hash: number; bucket: number }[];
  };
  if (file === "hash.json") {
    test(`${file}: ${doc.rows!.length} rows`, () => {
      for (const row of doc.rows!) {
        const h = murmur3(`${row.salt}.${row.value}`);
        assert.equal(h, row.hash, `murmur3(${JSON.stringify(row.salt + "." + row.value)})`);
        assert.equal(bucketOfHash(h), row.bucket, `bucket of ${JSON.stringify(row.value)}`);
      }
    });
    continue;
  }
  test(`${file}: ${doc.cases!.length} cases`, async (t) => {
    const snapshot = Snapshot.compile(doc.ruleset!);
    for (const c of doc.cases!) {
      await t.test(c.name, () => {
        const now = parseRfc3339(c.now ?? DEFAULT_NOW);
        assert.notEqual(now, undefined, `case time ${c.now}`);
        const { detail } = snapshot.evaluate(c.flag, c.context, now!);
        assert.deepEqual(
          { value: detail.value, variation: detail.variation, reason: detail.reason },
          { value: c.expected.value, variation: c.expected.variation, reason: c.expected.reason },
        );
      });
    }
  });
}
