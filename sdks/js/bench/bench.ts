/**
 * Local evaluation benchmarks (`npm run bench`), with the same flags as the Rust engine's
 * benchmarks: a boolean flag with five rules of mixed operators that the context matches
 * none of (the slowest path), a 50/50 rollout, a chain of three prerequisites, and all
 * 1,000 flags of a ruleset evaluated for one context. Prints nanoseconds per evaluation
 * (median of several timed runs, after warm-up).
 */

import { VexilClient } from "../src/index.js";
import { Snapshot, type FlagDef, type Ruleset } from "../src/engine/index.js";
import { Store } from "../src/server/store.js";

function boolFlag(extra: Partial<FlagDef> = {}): FlagDef {
  return {
    type: "boolean",
    variations: [{ key: "on", value: true }, { key: "off", value: false }],
    enabled: true,
    off_variation: "off",
    fallthrough: { variation: "off" },
    version: 1,
    ...extra,
  };
}

const fiveRules = (): FlagDef =>
  boolFlag({
    rules: [
      { id: "eu", clauses: [{ attribute: "country", op: "in", values: ["fr", "de", "es"] }], serve: { variation: "on" } },
      { id: "staff", clauses: [{ attribute: "email", op: "ends_with", values: ["@acme.com"], case_insensitive: true }], serve: { variation: "on" } },
      { id: "seniors", clauses: [{ attribute: "age", op: "gte", values: [65] }], serve: { variation: "on" } },
      { id: "new-app", clauses: [{ attribute: "app_version", op: "semver_gte", values: ["3.0.0"] }], serve: { variation: "on" } },
      { id: "enterprise", clauses: [{ attribute: "account.plan", op: "in", values: ["enterprise"] }], serve: { variation: "on" } },
    ],
  });
const rollout = (): FlagDef =>
  boolFlag({ fallthrough: { rollout: { variations: [{ variation: "on", weight: 50000 }, { variation: "off", weight: 50000 }] } } });
const withTargets = (): FlagDef => boolFlag({ targets: [{ variation: "on", values: ["user-1", "user-2", "user-3"] }] });

function ruleset(extra: number): Ruleset {
  const flags: Record<string, FlagDef> = {
    simple: boolFlag(),
    "five-rules": fiveRules(),
    rollout: rollout(),
  };
  for (let i = 0; i < 3; i++) {
    flags[`chain-${i}`] = boolFlag({ prerequisites: [{ flag: `chain-${i + 1}`, variations: ["on"] }], fallthrough: { variation: "on" } });
  }
  flags["chain-3"] = boolFlag({ fallthrough: { variation: "on" } });
  const makers = [() => boolFlag(), fiveRules, rollout, withTargets];
  for (let i = 0; i < extra; i++) flags[`flag-${String(i).padStart(5, "0")}`] = makers[i % 4]!();
  return { version: 1, flags, segments: {} };
}

const context = {
  targetingKey: "user-42",
  country: "us",
  email: "Jane@Example.com",
  age: 30,
  app_version: "2.4.1",
  account: { plan: "free" },
};

let sink = 0;

/** Nanoseconds per call of `f` (which runs `inner` evaluations), median of `runs`. */
function measure(f: () => void, inner: number, runs = 15): number {
  // Calibrate to about 50 ms per run (this also warms the code up).
  let iterations = 1;
  for (;;) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) f();
    if (Number(process.hrtime.bigint() - t) > 50e6) break;
    iterations *= 2;
  }
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) f();
    samples.push(Number(process.hrtime.bigint() - t) / (iterations * inner));
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(runs / 2)]!;
}

function report(name: string, ns: number, target?: string): void {
  const figure = ns >= 1e6 ? `${(ns / 1e6).toFixed(1)} ms` : ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`;
  console.log(`${name.padEnd(46)} ${figure.padStart(10)}${target ? `   (target ${target})` : ""}`);
}

function once(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t);
}

const small = Snapshot.compile(ruleset(0));
const big = Snapshot.compile(ruleset(1000 - 7));
if (big.size !== 1000) throw new Error(`expected 1000 flags, got ${big.size}`);
const client = new VexilClient({ offline: true, bootstrap: ruleset(0), insights: false });
const counting = new VexilClient({ offline: true, bootstrap: ruleset(0) });
const value = (f: () => boolean) => () => void (sink += f() ? 1 : 0);

console.log(`Node ${process.version} on ${process.platform}/${process.arch}\n`);
report("engine: boolean, no rules", measure(value(() => small.evaluate("simple", context, 0).detail.value === true), 1));
report("engine: boolean, 5 rules (none match)", measure(value(() => small.evaluate("five-rules", context, 0).detail.value === true), 1), "< 1 µs");
report("engine: 50/50 rollout", measure(value(() => small.evaluate("rollout", context, 0).detail.value === true), 1));
report("engine: prerequisite chain of 3", measure(value(() => small.evaluate("chain-0", context, 0).detail.value === true), 1));
report("client.boolValue, 5 rules", measure(value(() => client.boolValue("five-rules", context, false)), 1), "< 1 µs");
report("client.boolValue, 5 rules, counting on", measure(value(() => counting.boolValue("five-rules", context, false)), 1));
const all = measure(() => {
  for (const o of big.evaluateAll(context, 0).values()) if (o.detail.variation === "on") sink++;
}, 1, 9);
report("engine: all 1,000 flags for one context", all);
report("  per flag", all / 1000);

const store = new Store();
report("load a 10,000-flag ruleset (once)", once(() => store.replace(ruleset(10_000 - 7))));
const changed: FlagDef = { ...fiveRules(), enabled: false };
report("apply a 1-flag patch to it (once)", once(() => store.apply(2, [{ kind: "flag", key: "five-rules", def: changed }])));
await client.close();
await counting.close();
if (sink === -1) console.log(sink);
