/**
 * The server client's data: the current compiled snapshot plus the raw definitions it was
 * built from, so that `patch`/`delete` events can be applied and the flags whose result
 * may have changed can be named (the changed ones and every flag that depends on them
 * through prerequisites or segments).
 */

import type { FlagDef, Ruleset, SegmentDef } from "../engine/model.js";
import { stableJson } from "../engine/json.js";
import { Snapshot } from "../engine/snapshot.js";

/** One change carried by a stream event: a definition, or `null` when it was removed. */
export type Change =
  | { kind: "flag"; key: string; def: FlagDef | null }
  | { kind: "segment"; key: string; def: SegmentDef | null };

interface Index {
  flags: Record<string, FlagDef>;
  segments: Record<string, SegmentDef>;
  /** JSON text of each definition, keys sorted: equal text, equal definition. */
  flagPrints: Map<string, string>;
  segmentPrints: Map<string, string>;
}

const emptyIndex = (): Index => ({ flags: {}, segments: {}, flagPrints: new Map(), segmentPrints: new Map() });

export class Store {
  /** The data evaluations use; null before any was loaded. */
  snapshot: Snapshot | null = null;
  private index: Index = emptyIndex();

  get version(): number | null {
    return this.snapshot?.version ?? null;
  }

  /**
   * Replaces everything with `ruleset` (a fetch or a `put`); returns the affected flag
   * keys. Throws `RulesetError` (and changes nothing) when it does not validate.
   */
  replace(ruleset: Ruleset): string[] {
    const snapshot = Snapshot.compile(ruleset, this.snapshot ?? undefined);
    const next: Index = {
      flags: { ...(ruleset.flags ?? {}) },
      segments: { ...(ruleset.segments ?? {}) },
      flagPrints: prints(ruleset.flags ?? {}),
      segmentPrints: prints(ruleset.segments ?? {}),
    };
    const flags = diff(this.index.flagPrints, next.flagPrints);
    const segments = diff(this.index.segmentPrints, next.segmentPrints);
    this.index = next;
    this.snapshot = snapshot;
    return this.affected(flags, segments);
  }

  /** Applies changes at `version`; returns the affected flag keys. Throws when invalid. */
  apply(version: number, changes: readonly Change[]): string[] {
    const flags = { ...this.index.flags };
    const segments = { ...this.index.segments };
    for (const c of changes) {
      const target = (c.kind === "flag" ? flags : segments) as Record<string, unknown>;
      if (c.def === null) delete target[c.key];
      else target[c.key] = c.def;
    }
    const snapshot = Snapshot.compile({ version, flags, segments }, this.snapshot ?? undefined);
    const flagPrints = new Map(this.index.flagPrints);
    const segmentPrints = new Map(this.index.segmentPrints);
    const changedFlags = new Set<string>();
    const changedSegments = new Set<string>();
    for (const c of changes) {
      const map = c.kind === "flag" ? flagPrints : segmentPrints;
      const before = map.get(c.key);
      const after = c.def === null ? undefined : stableJson(c.def);
      if (before !== after) (c.kind === "flag" ? changedFlags : changedSegments).add(c.key);
      if (after === undefined) map.delete(c.key);
      else map.set(c.key, after);
    }
    this.index = { flags, segments, flagPrints, segmentPrints };
    this.snapshot = snapshot;
    return this.affected(changedFlags, changedSegments);
  }

  /** The changed flags plus every flag that depends on a changed flag or segment. */
  private affected(flags: Set<string>, segments: Set<string>): string[] {
    if (segments.size > 0) {
      // Segments that use changed segments, transitively.
      for (let grew = true; grew; ) {
        grew = false;
        for (const [key, def] of Object.entries(this.index.segments)) {
          if (!segments.has(key) && segmentRefs(def.rules ?? []).some((s) => segments.has(s))) {
            segments.add(key);
            grew = true;
          }
        }
      }
      for (const [key, def] of Object.entries(this.index.flags)) {
        if (segmentRefs(def.rules ?? []).some((s) => segments.has(s))) flags.add(key);
      }
    }
    if (flags.size > 0) {
      // Flags whose prerequisites changed, transitively.
      for (let grew = true; grew; ) {
        grew = false;
        for (const [key, def] of Object.entries(this.index.flags)) {
          if (!flags.has(key) && (def.prerequisites ?? []).some((p) => flags.has(p.flag))) {
            flags.add(key);
            grew = true;
          }
        }
      }
    }
    return [...flags].sort();
  }
}

function prints(defs: Record<string, unknown>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(defs)) out.set(k, stableJson(v));
  return out;
}

function diff(before: Map<string, string>, after: Map<string, string>): Set<string> {
  const out = new Set<string>();
  for (const [k, v] of after) if (before.get(k) !== v) out.add(k);
  for (const k of before.keys()) if (!after.has(k)) out.add(k);
  return out;
}

function segmentRefs(rules: readonly { clauses?: readonly { op: string; values?: unknown[] }[] }[]): string[] {
  const out: string[] = [];
  for (const r of rules) {
    for (const c of r.clauses ?? []) {
      if (c.op === "in_segment") for (const v of c.values ?? []) if (typeof v === "string") out.push(v);
    }
  }
  return out;
}
