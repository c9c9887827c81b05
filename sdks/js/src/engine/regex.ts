/**
 * `matches` clauses are written in the server's regular-expression syntax (that of Rust's
 * `regex` crate). This module translates it to an equivalent JavaScript `RegExp` (Unicode
 * mode) for the constructs where the two differ:
 *
 * - `\d`, `\w` (and `\D`, `\W` outside classes) are Unicode-aware, as in Rust;
 * - `.` matches anything but `\n` (JavaScript would also exclude `\r`, U+2028, U+2029);
 * - leading inline flags `(?i)`, `(?s)`, `(?m)` become RegExp flags;
 * - `(?P<name>…)` becomes `(?<name>…)`; `\A` and `\z` become `^` and `$`;
 * - `\x{…}` becomes `\u{…}`, `\pL` becomes `\p{L}`, and escaped punctuation that
 *   JavaScript's Unicode mode refuses (`\#`, `\-` outside a class…) is written as `\xNN`.
 *
 * A pattern that still does not compile (class set operations, POSIX classes, inline flags
 * in the middle of a pattern on older engines) is reported by `compileRegex` returning an
 * error; the caller then treats that value as one that never matches.
 */

const WORD = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";
const JS_SYNTAX = "^$\\.*+?()[]{}|/";

/** Translates a Rust-syntax pattern to a JavaScript RegExp; throws when it cannot. */
export function compileRegex(pattern: string, caseInsensitive: boolean): RegExp {
  const flags = new Set<string>(["u"]);
  if (caseInsensitive) flags.add("i");
  let i = 0;
  // Leading inline flag groups: (?i), (?is), (?s) ...
  for (;;) {
    const m = /^\(\?([a-zA-Z]+)\)/.exec(pattern.slice(i));
    if (!m) break;
    const group = m[1]!;
    if (!/^[ism]+$/.test(group)) break;
    for (const f of group) flags.add(f);
    i += m[0].length;
  }
  const dotAll = flags.has("s");
  let out = "";
  let inClass = false;
  let classStart = false;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "\\") {
      const n = pattern[i + 1];
      if (n === undefined) throw new Error("trailing backslash");
      i += 2;
      switch (n) {
        case "d":
          out += "\\p{Nd}";
          break;
        case "D":
          out += "\\P{Nd}";
          break;
        case "w":
          out += inClass ? WORD : `[${WORD}]`;
          break;
        case "W":
          out += inClass ? "\\W" : `[^${WORD}]`;
          break;
        case "A":
          out += "^";
          break;
        case "z":
          out += "$";
          break;
        case "x":
          if (pattern[i] === "{") {
            const end = pattern.indexOf("}", i);
            if (end < 0) throw new Error("unclosed \\x{");
            out += `\\u{${pattern.slice(i + 1, end)}}`;
            i = end + 1;
          } else {
            out += "\\x";
          }
          break;
        case "p":
        case "P":
          if (pattern[i] === "{") {
            out += "\\" + n;
          } else {
            const letter = pattern[i];
            if (letter === undefined) throw new Error("incomplete \\p");
            out += `\\${n}{${letter}}`;
            i += 1;
          }
          break;
        default:
          if (/[A-Za-z0-9]/.test(n) || JS_SYNTAX.includes(n) || (inClass && n === "-")) {
            out += "\\" + n;
          } else {
            out += "\\x" + n.charCodeAt(0).toString(16).padStart(2, "0");
          }
      }
      classStart = false;
      continue;
    }
    if (inClass) {
      if (c === "]" && classStart) {
        out += "\\]"; // a `]` first in a class is a literal in Rust syntax
      } else {
        if (c === "]") inClass = false;
        out += c;
      }
      classStart = classStart && c === "^";
      i++;
      continue;
    }
    if (c === "[") {
      inClass = true;
      classStart = true;
      out += c;
      i++;
      continue;
    }
    if (c === "(" && pattern.startsWith("(?P<", i)) {
      out += "(?<";
      i += 4;
      continue;
    }
    if (c === "." && !dotAll) {
      out += "[^\\n]";
      i++;
      continue;
    }
    out += c;
    i++;
  }
  return new RegExp(out, [...flags].join(""));
}
