/** Pieces both OpenFeature providers share (no import of either SDK). */

import type { Reason } from "../engine/model.js";

/** An SDK error code as OpenFeature's (the two vocabularies mostly agree). */
export function errorCodeOf(code: string): string {
  switch (code) {
    case "FLAG_NOT_FOUND":
    case "TARGETING_KEY_MISSING":
    case "TYPE_MISMATCH":
    case "PARSE_ERROR":
    case "INVALID_CONTEXT":
      return code;
    case "CLIENT_NOT_READY":
      return "PROVIDER_NOT_READY";
    default:
      return "GENERAL";
  }
}

/** OpenFeature flag metadata: the flag's version and, when they apply, the rule and prerequisite. */
export function flagMetadata(flagVersion: number | null, reason?: Reason): Record<string, string | number | boolean> {
  const m: Record<string, string | number | boolean> = {};
  if (flagVersion !== null) m.flagVersion = flagVersion;
  if (reason?.rule_id !== undefined) m.ruleId = reason.rule_id;
  if (reason?.rule_index !== undefined) m.ruleIndex = reason.rule_index;
  if (reason?.prerequisite_key !== undefined) m.prerequisiteKey = reason.prerequisite_key;
  return m;
}
