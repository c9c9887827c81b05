/**
 * Versions for the `semver_*` operators: strict SemVer 2.0 for clause values (optionally
 * prefixed `v`/`V`), and the lenient reading of context values — a `v`/`V` prefix, partial
 * versions (`2.1` is 2.1.0) and JSON numbers (`2` is 2.0.0, `1.2` is 1.2.0).
 *
 * MAJOR, MINOR and PATCH are unsigned 64-bit integers: they are kept as numbers when
 * they fit a double exactly and as bigints otherwise (`<` and `>` compare the two kinds).
 */

export type Part = number | bigint;

/** A parsed version: the release triple and the pre-release identifiers (build dropped). */
export interface Version {
  readonly major: Part;
  readonly minor: Part;
  readonly patch: Part;
  /** Pre-release identifiers; numeric ones as bigint, others as string. Empty: a release. */
  readonly pre: readonly (string | bigint)[];
}

const U64_MAX = 18446744073709551615n;

/** A MAJOR/MINOR/PATCH number: ASCII digits, no leading zero, fits 64 bits; else undefined. */
function numericPart(s: string): Part | undefined {
  if (s.length === 0 || s.length > 20) return undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  if (s.length > 1 && s.charCodeAt(0) === 48) return undefined;
  if (s.length <= 15) return Number(s);
  const big = BigInt(s);
  return big > U64_MAX ? undefined : big;
}

function isIdentChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45;
}

function allDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Parses strict SemVer 2.0 (`1.2.3`, `1.2.3-rc.1`, `1.2.3+build.5`); undefined if invalid. */
export function parseSemver(s: string): Version | undefined {
  let core = s;
  let pre = "";
  let build: string | undefined;
  const plus = core.indexOf("+");
  if (plus >= 0) {
    build = core.slice(plus + 1);
    core = core.slice(0, plus);
  }
  const dash = core.indexOf("-");
  let hasPre = false;
  if (dash >= 0) {
    pre = core.slice(dash + 1);
    core = core.slice(0, dash);
    hasPre = true;
  }
  const parts = core.split(".");
  if (parts.length !== 3) return undefined;
  const major = numericPart(parts[0]!);
  const minor = numericPart(parts[1]!);
  const patch = numericPart(parts[2]!);
  if (major === undefined || minor === undefined || patch === undefined) return undefined;
  const preIds: (string | bigint)[] = [];
  if (hasPre) {
    for (const id of pre.split(".")) {
      if (id.length === 0) return undefined;
      for (let i = 0; i < id.length; i++) if (!isIdentChar(id.charCodeAt(i))) return undefined;
      if (allDigits(id)) {
        if (id.length > 1 && id.charCodeAt(0) === 48) return undefined;
        preIds.push(BigInt(id));
      } else {
        preIds.push(id);
      }
    }
  }
  if (build !== undefined) {
    for (const id of build.split(".")) {
      if (id.length === 0) return undefined;
      for (let i = 0; i < id.length; i++) if (!isIdentChar(id.charCodeAt(i))) return undefined;
    }
  }
  return { major, minor, patch, pre: preIds };
}

/** Drops one leading `v` or `V`. */
export function stripV(s: string): string {
  const c = s.charCodeAt(0);
  return c === 118 || c === 86 ? s.slice(1) : s;
}

/** A clause value: complete SemVer 2.0, optionally prefixed `v`/`V`. */
export function parseClauseVersion(s: string): Version | undefined {
  return parseSemver(stripV(s));
}

/** `MAJOR[.MINOR[.PATCH]]` with nothing else, missing parts 0, no leading zeros. */
export function parseRelease(s: string): Version | undefined {
  if (s.length === 0) return undefined;
  const parts = s.split(".");
  if (parts.length > 3) return undefined;
  const nums: Part[] = [0, 0, 0];
  for (let i = 0; i < parts.length; i++) {
    const p = numericPart(parts[i]!);
    if (p === undefined) return undefined;
    nums[i] = p;
  }
  return { major: nums[0]!, minor: nums[1]!, patch: nums[2]!, pre: [] };
}

/** Accepts `2-rc.1` and `2.1+b` as `2.0.0-rc.1` and `2.1.0+b`. */
function parseLenient(s: string): Version | undefined {
  const full = parseSemver(s);
  if (full) return full;
  let split = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "-" || c === "+") {
      split = i;
      break;
    }
  }
  const core = s.slice(0, split);
  const rest = s.slice(split);
  const pieces = core.split(".");
  if (core.length === 0 || pieces.length > 2 || pieces.some((p) => p.length === 0)) return undefined;
  const padded = pieces.length === 1 ? `${core}.0.0${rest}` : `${core}.0${rest}`;
  return parseSemver(padded);
}

const TWO_POW_64 = 18446744073709551616;

/** A context value as a version, or undefined when it is not one (incomparable). */
export function contextVersion(v: unknown): Version | undefined {
  if (typeof v === "string") {
    const s = stripV(v);
    return parseRelease(s) ?? parseLenient(s);
  }
  if (typeof v === "number") {
    if (!(v >= 0) || !Number.isFinite(v)) return undefined;
    if (Number.isInteger(v)) {
      if (v >= TWO_POW_64) return undefined;
      const major: Part = v <= Number.MAX_SAFE_INTEGER ? v : BigInt(v);
      return { major, minor: 0, patch: 0, pre: [] };
    }
    // A number with a fraction, read in its shortest decimal form: 1.2 is 1.2.0. A tiny
    // number prints with an exponent or a leading zero, neither of which is a version.
    return parseRelease(String(v));
  }
  return undefined;
}

function cmpPart(a: Part, b: Part): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function cmpIdent(a: string | bigint, b: string | bigint): number {
  const an = typeof a === "bigint";
  const bn = typeof b === "bigint";
  if (an && bn) return a < b ? -1 : a > b ? 1 : 0;
  if (an) return -1; // numeric identifiers sort before alphanumeric ones
  if (bn) return 1;
  return a < b ? -1 : a > b ? 1 : 0; // ASCII order
}

/** SemVer 2.0 precedence (build metadata ignored): negative, zero or positive. */
export function compareVersions(a: Version, b: Version): number {
  const c = cmpPart(a.major, b.major) || cmpPart(a.minor, b.minor) || cmpPart(a.patch, b.patch);
  if (c !== 0) return c;
  const ap = a.pre;
  const bp = b.pre;
  if (ap.length === 0 || bp.length === 0) {
    // A release sorts after all of its pre-releases.
    return ap.length === bp.length ? 0 : ap.length === 0 ? 1 : -1;
  }
  const n = Math.min(ap.length, bp.length);
  for (let i = 0; i < n; i++) {
    const d = cmpIdent(ap[i]!, bp[i]!);
    if (d !== 0) return d;
  }
  return ap.length - bp.length;
}
