/**
 * RFC 3339 timestamps to epoch milliseconds, with exactly the grammar the server accepts:
 * `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `t` or a space as the separator and `z` for
 * UTC. Fractions beyond milliseconds are truncated; a leap second (`:60`) folds into the next.
 */

function digits(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i);
    if (!(c >= 48 && c <= 57)) return -1;
    v = v * 10 + (c - 48);
  }
  return v;
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, m: number): number {
  switch (m) {
    case 1: case 3: case 5: case 7: case 8: case 10: case 12:
      return 31;
    case 4: case 6: case 9: case 11:
      return 30;
    default:
      return isLeap(y) ? 29 : 28;
  }
}

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
function daysFromCivil(y: number, m: number, d: number): number {
  y = m <= 2 ? y - 1 : y;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = m > 2 ? m - 3 : m + 9;
  const doy = Math.floor((153 * mp + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Milliseconds since the Unix epoch of an RFC 3339 timestamp, or `undefined`. */
export function parseRfc3339(s: string): number | undefined {
  const len = s.length;
  if (len < 20) return undefined;
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  const hour = digits(s, 11, 2);
  const minute = digits(s, 14, 2);
  const second = digits(s, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return undefined;
  const sep = s[10];
  if (s[4] !== "-" || s[7] !== "-" || !(sep === "T" || sep === "t" || sep === " ")) return undefined;
  if (s[13] !== ":" || s[16] !== ":") return undefined;
  if (month < 1 || month > 12 || day === 0 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  let i = 19;
  let millis = 0;
  if (s[i] === ".") {
    i++;
    const start = i;
    while (i < len) {
      const c = s.charCodeAt(i);
      if (!(c >= 48 && c <= 57)) break;
      if (i - start < 3) millis = millis * 10 + (c - 48);
      i++;
    }
    const n = i - start;
    if (n === 0) return undefined;
    for (let k = n; k < 3; k++) millis *= 10;
  }
  if (i >= len) return undefined;
  let offsetMinutes: number;
  const z = s[i];
  if ((z === "Z" || z === "z") && i + 1 === len) {
    offsetMinutes = 0;
  } else if ((z === "+" || z === "-") && i + 6 === len && s[i + 3] === ":") {
    const h = digits(s, i + 1, 2);
    const m = digits(s, i + 4, 2);
    if (h < 0 || m < 0 || h > 23 || m > 59) return undefined;
    offsetMinutes = (z === "-" ? -1 : 1) * (h * 60 + m);
  } else {
    return undefined;
  }
  const days = daysFromCivil(year, month, day);
  const secs = days * 86400 + hour * 3600 + minute * 60 + second - offsetMinutes * 60;
  return secs * 1000 + millis;
}

/** Epoch milliseconds as RFC 3339 UTC with milliseconds (`2026-01-01T00:00:00.000Z`). */
export function formatRfc3339(ms: number): string {
  return new Date(ms).toISOString();
}
