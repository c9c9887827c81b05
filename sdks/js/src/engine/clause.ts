/**
 * Clauses compiled for evaluation: operands parsed once (regexes, versions, networks,
 * dates, numbers), attribute paths split once, and the matching rules: a clause matches
 * when any value matches, `negate` inverts that, and a missing or incomparable attribute
 * never matches, negated or not (`exists` and `in_segment` excepted).
 */

import type { Clause, Context, JsonValue } from "./model.js";
import { Cidr, dateOf, decimalOf, numberOf, parseIp } from "./operand.js";
import { compileRegex } from "./regex.js";
import { compareVersions, contextVersion, parseClauseVersion, type Version } from "./semver.js";

/** The attribute that holds the evaluation time (epoch milliseconds). */
export const NOW_ATTRIBUTE = "$now";

/** Segments may nest; this bounds recursion should a cycle ever slip past validation. */
export const MAX_DEPTH = 64;

/** What a clause needs to test segment membership. */
export interface SegmentLookup {
  segmentContains(key: string, ctx: Context, now: number, depth: number): boolean;
}

/** Reads an attribute: `undefined` when absent or `null`. */
export type Getter = (ctx: Context, now: number) => unknown;

/** A compiled clause: `(context, now, segments, depth) → matches`. */
export type Matcher = (ctx: Context, now: number, segments: SegmentLookup, depth: number) => boolean;

/** One attribute value against the operands: `undefined` when the type is incomparable. */
type Test = (v: unknown, now: number) => boolean | undefined;

const hasOwn = Object.prototype.hasOwnProperty;

function own(obj: unknown, key: string): unknown {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return undefined;
  return hasOwn.call(obj, key) ? (obj as Record<string, unknown>)[key] : undefined;
}

/** The getter of an attribute name: plain, dotted path (with literal fallback), or `$now`. */
export function attributeGetter(name: string): Getter {
  if (name === NOW_ATTRIBUTE) return (_ctx, now) => now;
  if (!name.includes(".")) {
    if (name in Object.prototype) {
      return (ctx) => {
        const v = hasOwn.call(ctx, name) ? ctx[name] : undefined;
        return v === null ? undefined : v;
      };
    }
    return (ctx) => {
      const v = ctx[name];
      return v === null ? undefined : v;
    };
  }
  const parts = name.split(".");
  return (ctx) => {
    // Walk nested objects (never arrays); a failed walk falls back to the literal key.
    let cur: unknown = hasOwn.call(ctx, parts[0]!) ? ctx[parts[0]!] : undefined;
    let found = cur !== undefined;
    for (let i = 1; found && i < parts.length; i++) {
      if (typeof cur !== "object" || cur === null || Array.isArray(cur) || !hasOwn.call(cur, parts[i]!)) {
        found = false;
        break;
      }
      cur = (cur as Record<string, unknown>)[parts[i]!];
    }
    const v = found ? cur : own(ctx, name);
    return v === null ? undefined : v;
  };
}

/** A validation problem: where, and what is wrong. */
export interface Problem {
  path: string;
  message: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Compiles one clause, pushing problems found; returns undefined if there were any.
 * `warnings` receives patterns the server accepts but JavaScript cannot compile.
 */
export function compileClause(
  clause: Clause,
  path: string,
  segmentExists: (key: string) => boolean,
  problems: Problem[],
  warnings: Problem[],
): Matcher | undefined {
  const before = problems.length;
  if (!isObject(clause)) {
    problems.push({ path, message: "must be an object" });
    return undefined;
  }
  const values: unknown[] = clause.values ?? [];
  if (!Array.isArray(values)) {
    problems.push({ path: `${path}.values`, message: "must be an array" });
    return undefined;
  }
  const attribute = clause.attribute ?? "";
  if (typeof attribute !== "string") {
    problems.push({ path: `${path}.attribute`, message: "must be a string" });
    return undefined;
  }
  const negate = clause.negate === true;
  const ci = clause.case_insensitive === true;
  const bad = (i: number, message: string) => problems.push({ path: `${path}.values[${i}]`, message });

  const strings = (): string[] =>
    values.flatMap((v, i) => {
      if (typeof v === "string") return [ci ? v.toLowerCase() : v];
      bad(i, "must be a string");
      return [];
    });
  const numbers = (): number[] =>
    values.flatMap((v, i) => {
      if (typeof v === "number") return [v];
      bad(i, "must be a number");
      return [];
    });
  const versions = (): Version[] =>
    values.flatMap((v, i) => {
      if (typeof v !== "string") {
        bad(i, "must be a semver string");
        return [];
      }
      const parsed = parseClauseVersion(v);
      if (!parsed) {
        bad(i, `invalid semver '${v}'`);
        return [];
      }
      return [parsed];
    });

  let test: Test | undefined;
  let special: "exists" | "segment" | undefined;
  let segmentKeys: string[] = [];
  const op = clause.op;
  switch (op) {
    case "in": {
      const strs: string[] = [];
      const nums: number[] = [];
      const bools = [false, false];
      values.forEach((v, i) => {
        if (typeof v === "string") strs.push(ci ? v.toLowerCase() : v);
        else if (typeof v === "number") nums.push(v);
        else if (typeof v === "boolean") bools[v ? 1 : 0] = true;
        else bad(i, "must be a string, number or boolean");
      });
      test = inTest(strs, nums, bools, ci);
      break;
    }
    case "starts_with": {
      const s = strings();
      test = strTest(s, ci, (a, b) => a.startsWith(b));
      break;
    }
    case "ends_with": {
      const s = strings();
      test = strTest(s, ci, (a, b) => a.endsWith(b));
      break;
    }
    case "contains": {
      const s = strings();
      test = strTest(s, ci, (a, b) => a.includes(b));
      break;
    }
    case "matches": {
      const regexes: RegExp[] = [];
      values.forEach((v, i) => {
        if (typeof v !== "string") {
          bad(i, "must be a regular expression string");
          return;
        }
        try {
          regexes.push(compileRegex(v, ci));
        } catch (e) {
          // The server validated this pattern in its own regex syntax. One that JavaScript
          // cannot express never matches here rather than rejecting the whole ruleset.
          warnings.push({ path: `${path}.values[${i}]`, message: `${(e as Error).message}` });
        }
      });
      test = (v) => {
        if (typeof v !== "string") return undefined;
        for (const r of regexes) if (r.test(v)) return true;
        return false;
      };
      break;
    }
    case "lt":
    case "lte":
    case "gt":
    case "gte": {
      const ns = numbers();
      const holds = cmpHolds(op);
      test = (v) => {
        const x = numberOf(v);
        if (x === undefined) return undefined;
        for (const y of ns) if (holds(x < y ? -1 : x > y ? 1 : 0)) return true;
        return false;
      };
      break;
    }
    case "before":
    case "after": {
      const dates: number[] = [];
      let useNow = false;
      values.forEach((v, i) => {
        if (v === NOW_ATTRIBUTE) useNow = true;
        else if (typeof v === "string" && dateOf(v) !== undefined) dates.push(dateOf(v)!);
        else if (typeof v === "number" && Number.isInteger(v)) dates.push(dateOf(v)!);
        else bad(i, 'invalid date: expected an RFC 3339 timestamp, integer epoch milliseconds or "$now"');
      });
      const after = op === "after";
      test = (v, now) => {
        const t = dateOf(v);
        if (t === undefined) return undefined;
        for (const d of dates) if (after ? t > d : t < d) return true;
        return useNow && (after ? t > now : t < now);
      };
      break;
    }
    case "semver_eq":
    case "semver_lt":
    case "semver_lte":
    case "semver_gt":
    case "semver_gte": {
      const vs = versions();
      const holds = cmpHolds(op.slice(7));
      test = (v) => {
        const ver = contextVersion(v);
        if (!ver) return undefined;
        for (const w of vs) if (holds(compareVersions(ver, w))) return true;
        return false;
      };
      break;
    }
    case "in_cidr": {
      const nets: Cidr[] = [];
      values.forEach((v, i) => {
        if (typeof v !== "string") {
          bad(i, "must be a CIDR string such as 10.0.0.0/8");
          return;
        }
        try {
          nets.push(Cidr.parse(v));
        } catch (e) {
          bad(i, `invalid CIDR: ${(e as Error).message}`);
        }
      });
      test = (v) => {
        if (typeof v !== "string") return undefined;
        const ip = parseIp(v);
        if (!ip) return undefined;
        for (const n of nets) if (n.contains(ip)) return true;
        return false;
      };
      break;
    }
    case "exists":
      special = "exists";
      if (values.length > 0) problems.push({ path: `${path}.values`, message: "exists takes no values" });
      break;
    case "in_segment":
      special = "segment";
      values.forEach((v, i) => {
        if (typeof v !== "string") bad(i, "must be a segment key");
        else if (!segmentExists(v)) bad(i, `unknown segment '${v}'`);
        else segmentKeys.push(v);
      });
      break;
    default:
      problems.push({ path: `${path}.op`, message: `unknown operator '${String(op)}'` });
      return undefined;
  }
  if (special !== "exists" && values.length === 0) {
    problems.push({ path: `${path}.values`, message: "at least one value is required" });
  }
  if (op !== "in_segment" && attribute.length === 0) {
    problems.push({ path: `${path}.attribute`, message: "attribute is required" });
  }
  if (problems.length !== before) return undefined;

  if (special === "segment") {
    const keys = segmentKeys;
    return (ctx, now, segs, depth) => {
      let inAny = false;
      for (const k of keys) {
        if (segs.segmentContains(k, ctx, now, depth + 1)) {
          inAny = true;
          break;
        }
      }
      return inAny !== negate;
    };
  }
  const get = attributeGetter(attribute);
  if (special === "exists") {
    return (ctx, now) => (get(ctx, now) !== undefined) !== negate;
  }
  const t = test!;
  return (ctx, now) => {
    const v = get(ctx, now);
    if (v === undefined) return false;
    let result: boolean | undefined;
    if (Array.isArray(v)) {
      for (const item of v) {
        const r = t(item, now);
        if (r === true) {
          result = true;
          break;
        }
        if (r === false) result = false;
      }
    } else {
      result = t(v, now);
    }
    return result === undefined ? false : result !== negate;
  };
}

function cmpHolds(op: string): (o: number) => boolean {
  switch (op) {
    case "eq":
      return (o) => o === 0;
    case "lt":
      return (o) => o < 0;
    case "lte":
      return (o) => o <= 0;
    case "gt":
      return (o) => o > 0;
    default:
      return (o) => o >= 0;
  }
}

function strTest(values: string[], ci: boolean, f: (attr: string, value: string) => boolean): Test {
  return (v) => {
    if (typeof v !== "string") return undefined;
    const a = ci ? v.toLowerCase() : v;
    for (const w of values) if (f(a, w)) return true;
    return false;
  };
}

function inTest(strs: string[], nums: number[], bools: boolean[], ci: boolean): Test {
  const set = strs.length > 4 ? new Set(strs) : undefined;
  const hasStrings = strs.length > 0;
  const hasNumbers = nums.length > 0;
  const hasBools = bools[0] || bools[1];
  const strEq = (s: string): boolean => {
    const a = ci ? s.toLowerCase() : s;
    return set ? set.has(a) : strs.includes(a);
  };
  const numIn = (x: number): boolean => {
    for (const y of nums) if (x === y) return true;
    return false;
  };
  return (v) => {
    switch (typeof v) {
      case "string": {
        if (!hasNumbers) return hasStrings ? strEq(v) : undefined;
        const asString = hasStrings ? strEq(v) : undefined;
        if (asString === true) return true;
        const x = decimalOf(v);
        return x !== undefined ? numIn(x) : asString;
      }
      case "number":
        return hasNumbers ? numIn(v) : undefined;
      case "boolean":
        return hasBools ? bools[v ? 1 : 0] : undefined;
      default:
        return undefined;
    }
  };
}

/** Whether a clause reads the evaluation time (its attribute, or a `"$now"` date value). */
export function clauseReadsNow(c: Clause): boolean {
  if (c.attribute === NOW_ATTRIBUTE) return true;
  return (c.op === "before" || c.op === "after") && (c.values ?? []).some((v: JsonValue) => v === NOW_ATTRIBUTE);
}
