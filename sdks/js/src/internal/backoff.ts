/**
 * Exponential backoff with jitter: the n-th consecutive failure waits a random time in
 * `[d/2, d]` where `d = min(max, initial · 2ⁿ)`, so that many clients cut off together do
 * not reconnect in lockstep, and no wait is ever zero.
 */
export class Backoff {
  private count = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {}

  /** The wait before the next attempt, counting one more failure. */
  next(): number {
    const exp = Math.min(this.count, 20);
    this.count++;
    const ceiling = Math.min(Math.max(this.maxMs, this.initialMs), this.initialMs * 2 ** exp);
    const half = ceiling / 2;
    return Math.max(1, Math.round(half + Math.random() * half));
  }

  /** Consecutive failures so far. */
  failures(): number {
    return this.count;
  }

  reset(): void {
    this.count = 0;
  }
}
