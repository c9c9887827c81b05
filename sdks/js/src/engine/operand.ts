/**
 * How operators read context values: strings that are plain decimal numbers, dates, and IP
 * addresses / CIDR networks (parsed with the same grammar as the server's).
 */

import { parseRfc3339 } from "./time.js";

/**
 * A string that is a plain decimal number — an optional `-`, one or more ASCII digits, and
 * optionally `.` with one or more digits — as that number; anything else (`+1`, `1e2`,
 * ` 1`, `0x10`, `.5`, `1.`, too large to be finite) is undefined.
 */
export function decimalOf(s: string): number | undefined {
  const n = s.length;
  let i = s.charCodeAt(0) === 45 ? 1 : 0;
  const intStart = i;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    i++;
  }
  if (i === intStart) return undefined;
  if (i < n) {
    if (s.charCodeAt(i) !== 46) return undefined;
    i++;
    const fracStart = i;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) return undefined;
      i++;
    }
    if (i === fracStart) return undefined;
  }
  const x = Number(s);
  return Number.isFinite(x) ? x : undefined;
}

/** A context value as a number: a JSON number, or a plain decimal string. */
export function numberOf(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isNaN(v) ? undefined : v;
  if (typeof v === "string") return decimalOf(v);
  return undefined;
}

/** A date operand or attribute: epoch milliseconds (a number) or an RFC 3339 string. */
export function dateOf(v: unknown): number | undefined {
  if (typeof v === "number") {
    if (!Number.isFinite(v) || Math.abs(v) >= 9.0e18) return undefined;
    return Math.trunc(v);
  }
  if (typeof v === "string") return parseRfc3339(v);
  if (v instanceof Date) {
    const t = v.getTime();
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

/** An address: IPv4 as 4 bytes, IPv6 as 16. */
export type IpBytes = Uint8Array;

function parseIpv4(s: string): IpBytes | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (p.length === 0 || p.length > 3) return undefined;
    if (p.length > 1 && p.charCodeAt(0) === 48) return undefined; // no leading zeros
    let v = 0;
    for (let j = 0; j < p.length; j++) {
      const c = p.charCodeAt(j);
      if (c < 48 || c > 57) return undefined;
      v = v * 10 + (c - 48);
    }
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

function parseHexGroup(g: string): number | undefined {
  if (g.length === 0 || g.length > 4) return undefined;
  let v = 0;
  for (let i = 0; i < g.length; i++) {
    const c = g.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 102) d = c - 87;
    else if (c >= 65 && c <= 70) d = c - 55;
    else return undefined;
    v = v * 16 + d;
  }
  return v;
}

/** The groups of one side of `::`, with an optional trailing dotted IPv4 (two groups). */
function parseGroups(s: string, allowV4Tail: boolean): number[] | undefined {
  if (s.length === 0) return [];
  const pieces = s.split(":");
  const out: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]!;
    if (allowV4Tail && i === pieces.length - 1 && p.includes(".")) {
      const v4 = parseIpv4(p);
      if (!v4) return undefined;
      out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else {
      const g = parseHexGroup(p);
      if (g === undefined) return undefined;
      out.push(g);
    }
  }
  return out;
}

function parseIpv6(s: string): IpBytes | undefined {
  const gap = s.indexOf("::");
  let groups: number[];
  if (gap >= 0) {
    if (s.indexOf("::", gap + 1) >= 0) return undefined;
    const head = parseGroups(s.slice(0, gap), false);
    const tail = parseGroups(s.slice(gap + 2), true);
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = parseGroups(s, true);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i]! >> 8;
    out[2 * i + 1] = groups[i]! & 0xff;
  }
  return out;
}

/** Parses an IPv4 (dotted decimal) or IPv6 address; undefined when it is neither. */
export function parseIp(s: string): IpBytes | undefined {
  return s.includes(":") ? parseIpv6(s) : parseIpv4(s);
}

/** An IPv4 or IPv6 network; a single address is a /32 or /128. */
export class Cidr {
  private constructor(
    private readonly net: IpBytes,
    private readonly prefix: number,
  ) {}

  /** Parses `10.0.0.0/8`, `2001:db8::/32` or a single address; throws with the reason. */
  static parse(s: string): Cidr {
    const slash = s.indexOf("/");
    const addr = slash >= 0 ? s.slice(0, slash) : s;
    const net = parseIp(addr);
    if (!net) throw new Error(`invalid IP address '${addr}'`);
    const max = net.length * 8;
    let prefix = max;
    if (slash >= 0) {
      const p = s.slice(slash + 1);
      const valid = /^[0-9]+$/.test(p) && Number(p) <= max;
      if (!valid) throw new Error(`invalid prefix length '${p}' (0 to ${max})`);
      prefix = Number(p);
    }
    return new Cidr(net, prefix);
  }

  /** Whether `ip` is in this network (never across address families). */
  contains(ip: IpBytes): boolean {
    if (ip.length !== this.net.length) return false;
    let bits = this.prefix;
    for (let i = 0; bits > 0; i++, bits -= 8) {
      const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
      if ((ip[i]! & mask) !== (this.net[i]! & mask)) return false;
    }
    return true;
  }
}
