/**
 * MurmurHash3 x86_32 over the UTF-8 bytes of a JavaScript string, and the bucketing formula
 * every Vexil SDK shares: `bucket = (murmur3("{salt}.{value}", seed 0) * 100000) >> 32`.
 *
 * The UTF-8 bytes are produced on the fly from the string's code points (a lone surrogate
 * becomes U+FFFD, as `TextEncoder` does), so hashing never allocates a byte array.
 */

/** Number of buckets: rollout weights are thousandths of a percent, so 100000 = 100 %. */
export const BUCKETS = 100_000;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3 x86_32 of the UTF-8 encoding of `text`, as an unsigned 32-bit integer. */
export function murmur3(text: string, seed = 0): number {
  let h = seed | 0;
  let block = 0; // bytes of the current 4-byte block, little endian
  let filled = 0; // how many bytes `block` holds
  let length = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      block |= c << (filled << 3);
      length++;
      if (++filled === 4) {
        h = mixBlock(h, block);
        block = 0;
        filled = 0;
      }
      continue;
    }
    // Multi-byte: decode a code point, then feed its UTF-8 bytes one at a time.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    } else if (c >= 0xd800 && c <= 0xdfff) {
      c = 0xfffd;
    }
    let bytes: number[];
    if (c < 0x800) {
      bytes = [0xc0 | (c >> 6), 0x80 | (c & 0x3f)];
    } else if (c < 0x10000) {
      bytes = [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)];
    } else {
      bytes = [
        0xf0 | (c >> 18),
        0x80 | ((c >> 12) & 0x3f),
        0x80 | ((c >> 6) & 0x3f),
        0x80 | (c & 0x3f),
      ];
    }
    for (const b of bytes) {
      block |= b << (filled << 3);
      length++;
      if (++filled === 4) {
        h = mixBlock(h, block);
        block = 0;
        filled = 0;
      }
    }
  }
  if (filled > 0) {
    let k = Math.imul(block, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The bucket in `[0, 100000)` of a 32-bit hash: `(hash * 100000) >> 32`, exactly. */
export function bucketOfHash(hash: number): number {
  // hash * 100000 < 2^49, well inside the exact range of a double.
  return Math.floor((hash * BUCKETS) / 4294967296);
}

/** The bucket of `value` under `salt` (the rollout's seed, or else the flag key). */
export function bucket(salt: string, value: string): number {
  return bucketOfHash(murmur3(salt + "." + value));
}
