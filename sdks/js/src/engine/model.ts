/**
 * The ruleset document: everything needed to evaluate the flags of one environment. It is
 * what `GET /api/v1/sdk/config` returns, what the stream's `put` carries, and what a
 * bootstrap file holds.
 */

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The evaluation context: `targetingKey` is the stable unit id; other keys are attributes. */
export type Context = Record<string, unknown>;

export type FlagType = "boolean" | "string" | "number" | "json";

export interface Variation {
  key: string;
  value: JsonValue;
  name?: string;
  description?: string;
}

export interface WeightedVariation {
  variation: string;
  /** Thousandths of a percent: the weights of a rollout sum to 100000. */
  weight: number;
}

export interface Rollout {
  /** The attribute that identifies a unit (default `targetingKey`). */
  bucket_by?: string;
  /** Salt of the bucketing hash (default: the flag key). */
  seed?: string;
  variations: WeightedVariation[];
}

/** What to serve: exactly one of a fixed variation or a percentage rollout. */
export interface Serve {
  variation?: string;
  rollout?: Rollout;
}

export interface Target {
  variation: string;
  values: string[];
}

export type Op =
  | "in" | "starts_with" | "ends_with" | "contains" | "matches"
  | "lt" | "lte" | "gt" | "gte" | "before" | "after"
  | "semver_eq" | "semver_lt" | "semver_lte" | "semver_gt" | "semver_gte"
  | "in_cidr" | "exists" | "in_segment";

export interface Clause {
  attribute?: string;
  op: Op;
  values?: JsonValue[];
  negate?: boolean;
  case_insensitive?: boolean;
}

export interface Rule {
  id?: string;
  description?: string;
  clauses?: Clause[];
  serve: Serve;
}

export interface Prerequisite {
  flag: string;
  variations: string[];
}

export interface FlagDef {
  type: FlagType;
  variations: Variation[];
  enabled?: boolean;
  off_variation: string;
  fallthrough: Serve;
  targets?: Target[];
  rules?: Rule[];
  prerequisites?: Prerequisite[];
  client_side?: boolean;
  version?: number;
  archived?: boolean;
}

export interface SegmentRule {
  id?: string;
  clauses?: Clause[];
}

export interface SegmentDef {
  included?: string[];
  excluded?: string[];
  rules?: SegmentRule[];
}

export interface Ruleset {
  version?: number;
  flags?: Record<string, FlagDef>;
  segments?: Record<string, SegmentDef>;
}

/** Why a value was served: the same object as the `reason` of `POST /api/v1/evaluate`. */
export interface Reason {
  kind: ReasonKind;
  rule_id?: string;
  rule_index?: number;
  in_rollout: boolean;
  error_code?: ErrorCode;
  prerequisite_key?: string;
}

export type ReasonKind =
  | "OFF"
  | "PREREQUISITE_FAILED"
  | "TARGET_MATCH"
  | "RULE_MATCH"
  | "FALLTHROUGH"
  | "ERROR";

/**
 * Why the caller's default was served. The engine itself produces `FLAG_NOT_FOUND` and
 * `TARGETING_KEY_MISSING`; the clients add the others.
 */
export type ErrorCode =
  | "FLAG_NOT_FOUND"
  | "TARGETING_KEY_MISSING"
  | "TYPE_MISMATCH"
  | "CLIENT_NOT_READY"
  | "GENERAL";

/** The result of evaluating one flag. */
export interface EvaluationDetail<T = JsonValue> {
  /** The served value; on an error, the caller's default (or `null` from the engine). */
  readonly value: T;
  /** The served variation's key; `null` on an error. */
  readonly variation: string | null;
  readonly reason: Reason;
  /** The flag configuration's version; `null` when the flag was not found. */
  readonly flagVersion: number | null;
}
