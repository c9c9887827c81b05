/**
 * The evaluation engine, with no I/O: a ruleset document in, evaluation results out. The
 * server client uses it for local evaluation; it is exported for tests and tools.
 */

export type {
  Clause, Context, ErrorCode, EvaluationDetail, FlagDef, FlagType, JsonValue, Op, Prerequisite, Reason,
  ReasonKind, Rollout, Rule, Ruleset, SegmentDef, SegmentRule, Serve, Target, Variation, WeightedVariation,
} from "./model.js";
export type { Problem } from "./clause.js";
export { NOW_ATTRIBUTE } from "./clause.js";
export { BUCKETS, bucket, bucketOfHash, murmur3 } from "./murmur3.js";
export { isValidKey, RulesetError, Snapshot, TOTAL_WEIGHT } from "./snapshot.js";
export type { FlagInfo, Outcome } from "./snapshot.js";
export { formatRfc3339, parseRfc3339 } from "./time.js";
