/**
 * Validation, compilation and evaluation: a ruleset document becomes an immutable
 * `Snapshot` that evaluates `(flag key, context, now)` in the order off → prerequisites →
 * targets → rules → fallthrough, with percentage rollouts bucketed by MurmurHash3.
 *
 * Every possible result of a flag (each variation under each reason) is built once, frozen,
 * at compile time, so evaluating a flag allocates nothing: it returns one of them.
 */

import { attributeGetter, clauseReadsNow, compileClause, MAX_DEPTH, NOW_ATTRIBUTE } from "./clause.js";
import type { Getter, Matcher, Problem, SegmentLookup } from "./clause.js";
import type {
  Clause, Context, ErrorCode, EvaluationDetail, FlagDef, FlagType, JsonValue, Reason, Ruleset, SegmentDef, Serve,
} from "./model.js";
import { stableJson } from "./json.js";
import { bucketOfHash, murmur3 } from "./murmur3.js";

/** The total of a rollout's weights: 100 %, in thousandths of a percent. */
export const TOTAL_WEIGHT = 100_000;

/** A ruleset that does not validate; `problems` lists every problem with its path. */
export class RulesetError extends Error {
  constructor(readonly problems: readonly Problem[]) {
    super(
      `invalid ruleset: ${problems.length} problem${problems.length === 1 ? "" : "s"}\n` +
        problems.map((p) => `  ${p.path || "(root)"}: ${p.message}`).join("\n"),
    );
    this.name = "RulesetError";
  }
}

/**
 * One possible result of a flag: the detail every client returns, plus the reason in
 * OpenFeature's (and OFREP's) vocabulary: STATIC, TARGETING_MATCH, SPLIT, DISABLED, DEFAULT
 * or ERROR.
 */
export interface Outcome {
  readonly detail: EvaluationDetail<JsonValue | null>;
  readonly openFeatureReason: string;
}

/** What a caller may know about a flag without evaluating it. */
export interface FlagInfo {
  readonly key: string;
  readonly type: FlagType;
  readonly clientSide: boolean;
  readonly version: number;
}

class CompiledServe {
  constructor(
    /** A fixed serve's outcome, or null for a rollout. */
    readonly fixed: Outcome | null,
    readonly bucketBy: Getter | null,
    readonly salt: string,
    /** Cumulative weights: serve `outcomes[i]` for the first `bucket < upto[i]`. */
    readonly upto: readonly number[],
    readonly outcomes: readonly Outcome[],
  ) {}
}

interface CompiledRule {
  readonly matchers: readonly Matcher[];
  readonly serve: CompiledServe;
}

interface CompiledPrereq {
  readonly flag: string;
  readonly variations: readonly string[];
  readonly failed: Outcome;
}

/** A flag ready for evaluation; shared between snapshots while its definition is unchanged. */
export interface CompiledFlag {
  readonly key: string;
  readonly type: FlagType;
  readonly enabled: boolean;
  readonly archived: boolean;
  readonly clientSide: boolean;
  readonly version: number;
  readonly off: Outcome;
  readonly prereqs: readonly CompiledPrereq[];
  readonly targets: ReadonlyMap<string, Outcome> | null;
  readonly rules: readonly CompiledRule[];
  readonly fallthrough: CompiledServe;
  readonly keyMissing: Outcome;
  readonly readsNow: boolean;
  /** The definition it was compiled from. */
  readonly def: unknown;
}

interface CompiledSegment {
  readonly included: ReadonlySet<string>;
  readonly excluded: ReadonlySet<string>;
  readonly rules: readonly (readonly Matcher[])[];
  readonly readsNow: boolean;
  readonly def: unknown;
}

const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const KEY_RULE = "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$";

/** Whether `key` is a valid flag, segment or variation key. */
export function isValidKey(key: unknown): key is string {
  return typeof key === "string" && KEY_RE.test(key);
}

function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

function errorOutcome(code: ErrorCode, flagVersion: number | null): Outcome {
  const reason: Reason = { kind: "ERROR", in_rollout: false, error_code: code };
  return deepFreeze({ detail: { value: null, variation: null, reason, flagVersion }, openFeatureReason: "ERROR" });
}

const NOT_FOUND = errorOutcome("FLAG_NOT_FOUND", null);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** An immutable, compiled ruleset of one environment. */
export class Snapshot implements SegmentLookup {
  private constructor(
    /** The ruleset version this snapshot was compiled from. */
    readonly version: number,
    private readonly flagMap: ReadonlyMap<string, CompiledFlag>,
    private readonly segmentMap: ReadonlyMap<string, CompiledSegment>,
    /** Whether any definition reads the evaluation time (else `now` is never read). */
    readonly readsNow: boolean,
    /** Patterns the server accepts that JavaScript cannot compile: they never match here. */
    readonly warnings: readonly Problem[],
  ) {}

  /** An empty snapshot (version 0, no flags). */
  static empty(): Snapshot {
    return new Snapshot(0, new Map(), new Map(), false, []);
  }

  /**
   * Validates and compiles a ruleset; throws `RulesetError` listing every problem.
   * `previous` lets unchanged flags and segments be reused instead of recompiled.
   */
  static compile(ruleset: Ruleset, previous?: Snapshot): Snapshot {
    const problems: Problem[] = [];
    const warnings: Problem[] = [];
    if (!isObject(ruleset)) throw new RulesetError([{ path: "", message: "a ruleset must be a JSON object" }]);
    const version = ruleset.version ?? 0;
    if (typeof version !== "number" || !Number.isInteger(version) || version < 0) {
      problems.push({ path: "version", message: "must be a non-negative integer" });
    }
    const flagDefs = (ruleset.flags ?? {}) as Record<string, FlagDef>;
    const segmentDefs = (ruleset.segments ?? {}) as Record<string, SegmentDef>;
    if (!isObject(flagDefs)) problems.push({ path: "flags", message: "must be an object" });
    if (!isObject(segmentDefs)) problems.push({ path: "segments", message: "must be an object" });
    if (problems.length > 0) throw new RulesetError(problems);
    const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
    const segmentExists = (k: string) => hasOwn(segmentDefs, k);

    const segments = new Map<string, CompiledSegment>();
    for (const [key, def] of Object.entries(segmentDefs)) {
      const path = `segments.${key}`;
      if (!isValidKey(key)) problems.push({ path, message: `invalid segment key: ${KEY_RULE}` });
      const reused = previous?.segmentMap.get(key);
      if (reused && sameDefinition(reused.def, def)) {
        // Its references still have to resolve in this ruleset.
        checkSegmentRefs(def, path, segmentExists, problems);
        segments.set(key, reused);
        continue;
      }
      const seg = compileSegment(def, path, segmentExists, problems, warnings);
      if (seg) segments.set(key, seg);
    }

    const flags = new Map<string, CompiledFlag>();
    const variationsOf = (k: string): Set<string> | undefined => {
      const d = hasOwn(flagDefs, k) ? flagDefs[k] : undefined;
      if (!isObject(d) || !Array.isArray(d.variations)) return d === undefined ? undefined : new Set();
      return new Set(d.variations.map((v) => (isObject(v) ? String(v.key) : "")));
    };
    for (const [key, def] of Object.entries(flagDefs)) {
      const path = `flags.${key}`;
      if (!isValidKey(key)) problems.push({ path, message: `invalid flag key: ${KEY_RULE}` });
      const reused = previous?.flagMap.get(key);
      if (reused && sameDefinition(reused.def, def)) {
        checkFlagRefs(key, def, path, variationsOf, segmentExists, problems);
        flags.set(key, reused);
        continue;
      }
      const flag = compileFlag(key, def, path, variationsOf, segmentExists, problems, warnings);
      if (flag) flags.set(key, flag);
    }

    checkCycles(
      Object.keys(flagDefs),
      (k) =>
        (isObject(flagDefs[k]) && Array.isArray(flagDefs[k]!.prerequisites) ? flagDefs[k]!.prerequisites! : [])
          .map((p, i) => [isObject(p) ? String(p.flag) : "", `flags.${k}.prerequisites[${i}].flag`] as const)
          .filter(([f]) => f !== k && hasOwn(flagDefs, f)),
      "prerequisite",
      problems,
    );
    checkCycles(
      Object.keys(segmentDefs),
      (k) => {
        const out: (readonly [string, string])[] = [];
        const rules = isObject(segmentDefs[k]) ? segmentDefs[k]!.rules : undefined;
        (Array.isArray(rules) ? rules : []).forEach((r, ri) =>
          (isObject(r) && Array.isArray(r.clauses) ? r.clauses : []).forEach((c, ci) => {
            if (!isObject(c) || c.op !== "in_segment" || !Array.isArray(c.values)) return;
            c.values.forEach((v, vi) => {
              if (typeof v === "string" && segmentExists(v)) {
                out.push([v, `segments.${k}.rules[${ri}].clauses[${ci}].values[${vi}]`]);
              }
            });
          }),
        );
        return out;
      },
      "segment",
      problems,
    );

    if (problems.length > 0) throw new RulesetError(problems);
    let readsNow = false;
    for (const f of flags.values()) readsNow ||= f.readsNow;
    for (const s of segments.values()) readsNow ||= s.readsNow;
    const keptWarnings = previous ? [...previous.warnings.filter((w) => stillThere(w, flags, segments)), ...warnings] : warnings;
    return new Snapshot(version as number, flags, segments, readsNow, keptWarnings);
  }

  /** Number of flags (archived ones included). */
  get size(): number {
    return this.flagMap.size;
  }

  /** Evaluates flag `key` for `context` at `nowMs` (epoch milliseconds). */
  evaluate(key: string, context: Context, nowMs: number): Outcome {
    const flag = this.flagMap.get(key);
    if (flag === undefined || flag.archived) return NOT_FOUND;
    return this.evalFlag(flag, context, nowMs, 0);
  }

  /** Every non-archived flag evaluated for one context, by key. */
  evaluateAll(context: Context, nowMs: number): Map<string, Outcome> {
    const out = new Map<string, Outcome>();
    for (const flag of this.flagMap.values()) {
      if (!flag.archived) out.set(flag.key, this.evalFlag(flag, context, nowMs, 0));
    }
    return out;
  }

  /** Metadata of flag `key`, if it exists and is not archived. */
  flagInfo(key: string): FlagInfo | undefined {
    const f = this.flagMap.get(key);
    return f && !f.archived ? { key: f.key, type: f.type, clientSide: f.clientSide, version: f.version } : undefined;
  }

  /** The keys of every non-archived flag, sorted. */
  flagKeys(): string[] {
    const keys: string[] = [];
    for (const f of this.flagMap.values()) if (!f.archived) keys.push(f.key);
    return keys.sort();
  }

  /** @internal */
  segmentContains(key: string, ctx: Context, now: number, depth: number): boolean {
    if (depth > MAX_DEPTH) return false;
    const seg = this.segmentMap.get(key);
    if (seg === undefined) return false;
    const tk = ctx.targetingKey;
    if (typeof tk === "string") {
      if (seg.included.has(tk)) return true;
      if (seg.excluded.has(tk)) return false;
    }
    for (const clauses of seg.rules) {
      let all = true;
      for (const m of clauses) {
        if (!m(ctx, now, this, depth)) {
          all = false;
          break;
        }
      }
      if (all) return true;
    }
    return false;
  }

  private evalFlag(flag: CompiledFlag, ctx: Context, now: number, depth: number): Outcome {
    if (!flag.enabled) return flag.off;
    const prereqs = flag.prereqs;
    for (let i = 0; i < prereqs.length; i++) {
      const p = prereqs[i]!;
      if (!this.prerequisiteHolds(p, ctx, now, depth)) return p.failed;
    }
    if (flag.targets !== null) {
      const tk = ctx.targetingKey;
      if (typeof tk === "string") {
        const hit = flag.targets.get(tk);
        if (hit !== undefined) return hit;
      }
    }
    const rules = flag.rules;
    for (let r = 0; r < rules.length; r++) {
      const rule = rules[r]!;
      const matchers = rule.matchers;
      let all = true;
      for (let c = 0; c < matchers.length; c++) {
        if (!matchers[c]!(ctx, now, this, 0)) {
          all = false;
          break;
        }
      }
      if (all) return serve(flag, rule.serve, ctx, now);
    }
    return serve(flag, flag.fallthrough, ctx, now);
  }

  private prerequisiteHolds(p: CompiledPrereq, ctx: Context, now: number, depth: number): boolean {
    if (depth >= MAX_DEPTH) return false;
    const flag = this.flagMap.get(p.flag);
    if (flag === undefined || flag.archived || !flag.enabled) return false;
    const variation = this.evalFlag(flag, ctx, now, depth + 1).detail.variation;
    return variation !== null && p.variations.includes(variation);
  }
}

/** The same object, or an equal one (keys in any order). */
function sameDefinition(a: unknown, b: unknown): boolean {
  return a === b || stableJson(a) === stableJson(b);
}

function stillThere(w: Problem, flags: Map<string, CompiledFlag>, segments: Map<string, CompiledSegment>): boolean {
  const m = /^(flags|segments)\.([^.[]+)/.exec(w.path);
  if (!m) return false;
  return m[1] === "flags" ? flags.has(m[2]!) : segments.has(m[2]!);
}

/** The bucketing value of a context attribute: a string as is, an integer in decimal. */
function bucketValue(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number") {
    if (!Number.isInteger(v)) return undefined;
    if (Number.isSafeInteger(v)) return String(v);
    // Beyond 2^53 a double is still an exact integer: print all of its digits (within
    // the 64-bit range the server reads integers in).
    if (v < -9223372036854775808 || v >= 18446744073709551616) return undefined;
    return BigInt(v).toString();
  }
  if (typeof v === "bigint") return v.toString();
  return undefined;
}

function serve(flag: CompiledFlag, s: CompiledServe, ctx: Context, now: number): Outcome {
  if (s.fixed !== null) return s.fixed;
  const value = bucketValue(s.bucketBy!(ctx, now));
  if (value === undefined) return flag.keyMissing;
  const b = bucketOfHash(murmur3(s.salt + "." + value));
  const upto = s.upto;
  for (let i = 0; i < upto.length; i++) if (b < upto[i]!) return s.outcomes[i]!;
  return s.outcomes[s.outcomes.length - 1] ?? flag.keyMissing;
}

function compileSegment(
  def: SegmentDef,
  path: string,
  segmentExists: (k: string) => boolean,
  problems: Problem[],
  warnings: Problem[],
): CompiledSegment | undefined {
  const before = problems.length;
  if (!isObject(def)) {
    problems.push({ path, message: "must be an object" });
    return undefined;
  }
  const included = stringList(def.included, `${path}.included`, problems);
  const excluded = stringList(def.excluded, `${path}.excluded`, problems);
  const rules: Matcher[][] = [];
  let readsNow = false;
  const ruleDefs = def.rules ?? [];
  if (!Array.isArray(ruleDefs)) {
    problems.push({ path: `${path}.rules`, message: "must be an array" });
  } else {
    ruleDefs.forEach((rule, ri) => {
      const clauses = isObject(rule) ? (rule.clauses ?? []) : undefined;
      if (!Array.isArray(clauses)) {
        problems.push({ path: `${path}.rules[${ri}]`, message: "must be an object with a clauses array" });
        return;
      }
      const matchers: Matcher[] = [];
      clauses.forEach((c, ci) => {
        const m = compileClause(c, `${path}.rules[${ri}].clauses[${ci}]`, segmentExists, problems, warnings);
        if (m) matchers.push(m);
        if (isObject(c)) readsNow ||= clauseReadsNow(c as unknown as Clause);
      });
      rules.push(matchers);
    });
  }
  if (problems.length !== before) return undefined;
  return { included: new Set(included), excluded: new Set(excluded), rules, readsNow, def };
}

function stringList(v: unknown, path: string, problems: Problem[]): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    problems.push({ path, message: "must be an array of strings" });
    return [];
  }
  return v as string[];
}

/** For a reused segment: its `in_segment` references must still resolve. */
function checkSegmentRefs(def: SegmentDef, path: string, segmentExists: (k: string) => boolean, problems: Problem[]): void {
  (def.rules ?? []).forEach((r, ri) =>
    (r.clauses ?? []).forEach((c, ci) => checkClauseRefs(c, `${path}.rules[${ri}].clauses[${ci}]`, segmentExists, problems)),
  );
}

function checkClauseRefs(c: { op: string; values?: JsonValue[] }, path: string, segmentExists: (k: string) => boolean, problems: Problem[]) {
  if (c.op !== "in_segment") return;
  (c.values ?? []).forEach((v, i) => {
    if (typeof v === "string" && !segmentExists(v)) problems.push({ path: `${path}.values[${i}]`, message: `unknown segment '${v}'` });
  });
}

/** For a reused flag: its prerequisites and segments must still resolve. */
function checkFlagRefs(
  key: string,
  def: FlagDef,
  path: string,
  variationsOf: (k: string) => Set<string> | undefined,
  segmentExists: (k: string) => boolean,
  problems: Problem[],
): void {
  (def.rules ?? []).forEach((r, ri) =>
    (r.clauses ?? []).forEach((c, ci) => checkClauseRefs(c, `${path}.rules[${ri}].clauses[${ci}]`, segmentExists, problems)),
  );
  checkPrereqs(key, def, path, variationsOf, problems);
}

function checkPrereqs(
  key: string,
  def: FlagDef,
  path: string,
  variationsOf: (k: string) => Set<string> | undefined,
  problems: Problem[],
): { flag: string; variations: string[] }[] {
  const out: { flag: string; variations: string[] }[] = [];
  const list = def.prerequisites ?? [];
  if (!Array.isArray(list)) {
    problems.push({ path: `${path}.prerequisites`, message: "must be an array" });
    return out;
  }
  const seen = new Set<string>();
  list.forEach((p, pi) => {
    const ppath = `${path}.prerequisites[${pi}]`;
    if (!isObject(p) || typeof p.flag !== "string" || !Array.isArray(p.variations)) {
      problems.push({ path: ppath, message: "must be {flag, variations}" });
      return;
    }
    if (p.flag === key) {
      problems.push({ path: `${ppath}.flag`, message: "a flag cannot be its own prerequisite" });
      return;
    }
    if (seen.has(p.flag)) problems.push({ path: `${ppath}.flag`, message: `duplicate prerequisite '${p.flag}'` });
    seen.add(p.flag);
    const known = variationsOf(p.flag);
    if (known === undefined) {
      problems.push({ path: `${ppath}.flag`, message: `unknown flag '${p.flag}'` });
      return;
    }
    if (p.variations.length === 0) problems.push({ path: `${ppath}.variations`, message: "at least one variation is required" });
    p.variations.forEach((v, vi) => {
      if (typeof v !== "string" || !known.has(v)) {
        problems.push({ path: `${ppath}.variations[${vi}]`, message: `flag '${p.flag}' has no variation '${String(v)}'` });
      }
    });
    out.push({ flag: p.flag, variations: p.variations.filter((v): v is string => typeof v === "string") });
  });
  return out;
}

const TYPES: readonly FlagType[] = ["boolean", "string", "number", "json"];

function accepts(type: FlagType, v: unknown): boolean {
  switch (type) {
    case "boolean":
      return typeof v === "boolean";
    case "string":
      return typeof v === "string";
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    default:
      return v !== undefined;
  }
}

function reason(kind: Reason["kind"], extra: Partial<Reason> = {}): Reason {
  // Keys in the server's order, absent parts omitted.
  const r: Record<string, unknown> = { kind };
  if (extra.rule_id !== undefined) r.rule_id = extra.rule_id;
  if (extra.rule_index !== undefined) r.rule_index = extra.rule_index;
  r.in_rollout = extra.in_rollout ?? false;
  if (extra.prerequisite_key !== undefined) r.prerequisite_key = extra.prerequisite_key;
  return r as unknown as Reason;
}

function compileFlag(
  key: string,
  def: FlagDef,
  path: string,
  variationsOf: (k: string) => Set<string> | undefined,
  segmentExists: (k: string) => boolean,
  problems: Problem[],
  warnings: Problem[],
): CompiledFlag | undefined {
  const before = problems.length;
  if (!isObject(def)) {
    problems.push({ path, message: "must be an object" });
    return undefined;
  }
  const type = def.type;
  if (!TYPES.includes(type)) {
    problems.push({ path: `${path}.type`, message: "must be one of boolean, string, number, json" });
    return undefined;
  }
  const variations = Array.isArray(def.variations) ? def.variations : [];
  if (!Array.isArray(def.variations)) problems.push({ path: `${path}.variations`, message: "must be an array" });
  else if (variations.length === 0) problems.push({ path: `${path}.variations`, message: "at least one variation is required" });
  const index = new Map<string, number>();
  variations.forEach((v, i) => {
    const vpath = `${path}.variations[${i}]`;
    if (!isObject(v)) {
      problems.push({ path: vpath, message: "must be an object" });
      return;
    }
    if (!isValidKey(v.key)) problems.push({ path: `${vpath}.key`, message: `invalid variation key: ${KEY_RULE}` });
    else if (index.has(v.key)) problems.push({ path: `${vpath}.key`, message: `duplicate variation key '${v.key}'` });
    else index.set(v.key, i);
    if (!accepts(type, v.value)) problems.push({ path: `${vpath}.value`, message: `must be a ${type} value` });
  });
  if (
    type === "boolean" &&
    variations.length > 0 &&
    !(variations.length === 2 && variations.some((v) => v?.value === true) && variations.some((v) => v?.value === false))
  ) {
    problems.push({ path: `${path}.variations`, message: "a boolean flag has exactly two variations, with the values true and false" });
  }
  const resolve = (p: string, k: unknown): number | undefined => {
    const found = typeof k === "string" ? index.get(k) : undefined;
    if (found === undefined) problems.push({ path: p, message: `unknown variation '${String(k)}'` });
    return found;
  };
  const version = def.version ?? 0;
  if (typeof version !== "number") problems.push({ path: `${path}.version`, message: "must be a number" });
  const hasTargets = Array.isArray(def.targets) && def.targets.length > 0;
  const hasRules = Array.isArray(def.rules) && def.rules.length > 0;
  const hasPrereqs = Array.isArray(def.prerequisites) && def.prerequisites.length > 0;
  const fixedFallthrough = isObject(def.fallthrough) && def.fallthrough.rollout === undefined;
  const isStatic = !hasTargets && !hasRules && !hasPrereqs && fixedFallthrough;

  const outcome = (i: number, r: Reason): Outcome => {
    const v = variations[i]!;
    const ofReason =
      r.kind === "OFF" || r.kind === "PREREQUISITE_FAILED"
        ? "DISABLED"
        : r.in_rollout
          ? "SPLIT"
          : r.kind === "FALLTHROUGH"
            ? isStatic
              ? "STATIC"
              : "DEFAULT"
            : "TARGETING_MATCH";
    return deepFreeze({
      detail: { value: structuredCloneJson(v.value), variation: v.key, reason: r, flagVersion: version as number },
      openFeatureReason: ofReason,
    });
  };

  const off = resolve(`${path}.off_variation`, def.off_variation);
  let readsNow = false;
  const compileServe = (s: Serve, spath: string, base: Partial<Reason> & { kind: Reason["kind"] }): CompiledServe | undefined => {
    if (!isObject(s) || (s.variation === undefined) === (s.rollout === undefined)) {
      problems.push({ path: spath, message: "must have exactly one of 'variation' or 'rollout'" });
      return undefined;
    }
    if (s.variation !== undefined) {
      const i = resolve(`${spath}.variation`, s.variation);
      return i === undefined ? undefined : new CompiledServe(outcome(i, reason(base.kind, base)), null, "", [], []);
    }
    const r = s.rollout!;
    const rpath = `${spath}.rollout`;
    const pb = problems.length;
    if (!isObject(r) || !Array.isArray(r.variations)) {
      problems.push({ path: rpath, message: "must be {bucket_by?, seed?, variations: [...]}" });
      return undefined;
    }
    const bucketBy = r.bucket_by ?? "targetingKey";
    if (typeof bucketBy !== "string" || bucketBy.length === 0) problems.push({ path: `${rpath}.bucket_by`, message: "must not be empty" });
    if (r.seed !== undefined && typeof r.seed !== "string") problems.push({ path: `${rpath}.seed`, message: "must be a string" });
    if (r.variations.length === 0) problems.push({ path: `${rpath}.variations`, message: "at least one variation is required" });
    const upto: number[] = [];
    const outcomes: Outcome[] = [];
    const seen = new Set<string>();
    let total = 0;
    r.variations.forEach((wv, i) => {
      const vpath = `${rpath}.variations[${i}]`;
      if (!isObject(wv)) {
        problems.push({ path: vpath, message: "must be {variation, weight}" });
        return;
      }
      const idx = resolve(`${vpath}.variation`, wv.variation);
      const name = String(wv.variation);
      if (seen.has(name)) problems.push({ path: `${vpath}.variation`, message: `variation '${name}' appears twice in the rollout` });
      seen.add(name);
      if (typeof wv.weight !== "number" || !Number.isInteger(wv.weight) || wv.weight < 0 || wv.weight > 4294967295) {
        problems.push({ path: `${vpath}.weight`, message: "must be a non-negative integer" });
        return;
      }
      total += wv.weight;
      if (idx !== undefined) {
        upto.push(total);
        outcomes.push(outcome(idx, reason(base.kind, { ...base, in_rollout: true })));
      }
    });
    if (r.variations.length > 0 && total !== TOTAL_WEIGHT) {
      problems.push({ path: `${rpath}.variations`, message: `weights must sum to ${TOTAL_WEIGHT} (100%), got ${total}` });
    }
    if (problems.length !== pb) return undefined;
    if (bucketBy === NOW_ATTRIBUTE) readsNow = true;
    return new CompiledServe(null, attributeGetter(bucketBy as string), (r.seed as string | undefined) ?? key, upto, outcomes);
  };

  const fallthrough = compileServe(def.fallthrough, `${path}.fallthrough`, { kind: "FALLTHROUGH" });

  let targets: Map<string, Outcome> | null = null;
  const targetDefs = def.targets ?? [];
  if (!Array.isArray(targetDefs)) problems.push({ path: `${path}.targets`, message: "must be an array" });
  else {
    const targetedBy = new Map<string, number>();
    targetDefs.forEach((t, ti) => {
      const tpath = `${path}.targets[${ti}]`;
      if (!isObject(t) || !Array.isArray(t.values)) {
        problems.push({ path: tpath, message: "must be {variation, values}" });
        return;
      }
      const vi = resolve(`${tpath}.variation`, t.variation);
      const hit = vi === undefined ? undefined : outcome(vi, reason("TARGET_MATCH"));
      t.values.forEach((value, i) => {
        if (typeof value !== "string") {
          problems.push({ path: `${tpath}.values[${i}]`, message: "must be a string" });
          return;
        }
        const prev = targetedBy.get(value);
        if (prev !== undefined) problems.push({ path: `${tpath}.values[${i}]`, message: `'${value}' is already targeted by targets[${prev}]` });
        targetedBy.set(value, ti);
        if (hit) (targets ??= new Map()).set(value, hit);
      });
    });
  }

  const rules: CompiledRule[] = [];
  const ruleDefs = def.rules ?? [];
  if (!Array.isArray(ruleDefs)) problems.push({ path: `${path}.rules`, message: "must be an array" });
  else {
    const ids = new Map<string, number>();
    ruleDefs.forEach((rule, ri) => {
      const rpath = `${path}.rules[${ri}]`;
      if (!isObject(rule)) {
        problems.push({ path: rpath, message: "must be an object" });
        return;
      }
      if (rule.id !== undefined) {
        if (typeof rule.id !== "string" || rule.id.length === 0 || rule.id.length > 100) {
          problems.push({ path: `${rpath}.id`, message: "rule id must be 1 to 100 characters" });
        } else if (ids.has(rule.id)) {
          problems.push({ path: `${rpath}.id`, message: `duplicate rule id '${rule.id}' (also rules[${ids.get(rule.id)}])` });
        } else {
          ids.set(rule.id, ri);
        }
      }
      const clauses = rule.clauses ?? [];
      const matchers: Matcher[] = [];
      if (!Array.isArray(clauses)) problems.push({ path: `${rpath}.clauses`, message: "must be an array" });
      else {
        clauses.forEach((c, ci) => {
          const m = compileClause(c, `${rpath}.clauses[${ci}]`, segmentExists, problems, warnings);
          if (m) matchers.push(m);
          if (isObject(c)) readsNow ||= clauseReadsNow(c);
        });
      }
      const base: Partial<Reason> & { kind: Reason["kind"] } = { kind: "RULE_MATCH", rule_index: ri };
      if (typeof rule.id === "string") base.rule_id = rule.id;
      const s = compileServe(rule.serve, `${rpath}.serve`, base);
      if (s) rules.push({ matchers, serve: s });
    });
  }

  const prereqDefs = checkPrereqs(key, def, path, variationsOf, problems);
  if (problems.length !== before || off === undefined || fallthrough === undefined) return undefined;
  return {
    key,
    type,
    enabled: def.enabled === true,
    archived: def.archived === true,
    clientSide: def.client_side === true,
    version: version as number,
    off: outcome(off, reason("OFF")),
    prereqs: prereqDefs.map((p) => ({
      flag: p.flag,
      variations: p.variations,
      failed: outcome(off, reason("PREREQUISITE_FAILED", { prerequisite_key: p.flag })),
    })),
    targets,
    rules,
    fallthrough,
    keyMissing: errorOutcome("TARGETING_KEY_MISSING", version as number),
    readsNow,
    def,
  };
}

/** A private copy of a variation value, so that freezing it leaves the input untouched. */
function structuredCloneJson(v: JsonValue): JsonValue {
  return typeof v === "object" && v !== null ? (JSON.parse(JSON.stringify(v)) as JsonValue) : v;
}

/** Depth-first search for cycles in a key → referenced keys graph; each reported once. */
function checkCycles(
  nodes: string[],
  edges: (k: string) => (readonly [string, string])[],
  describe: string,
  problems: Problem[],
): void {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, 1);
    stack.push(node);
    for (const [next, path] of edges(node)) {
      const s = state.get(next);
      if (s === undefined) visit(next);
      else if (s === 1) {
        const cycle = [...stack.slice(stack.indexOf(next)), next];
        problems.push({ path, message: `${describe} cycle: ${cycle.join(" → ")}` });
      }
    }
    stack.pop();
    state.set(node, 2);
  };
  for (const n of nodes) if (!state.has(n)) visit(n);
}
