/**
 * Insights: evaluation counts and tracked events, sent in the background.
 *
 * - Counts per flag and variation are kept in memory and posted every `flushIntervalMs` to
 *   `POST /api/v1/sdk/metrics` as `{"start", "end", "flags": {"<key>": {"<variation>": n}}}`.
 * - `track()` events are queued and posted (at most 1,000 a request) to
 *   `POST /api/v1/track` as `{"events": [{"key", "context", "value"?, "timestamp"}]}`.
 *
 * Both are best effort and never delay an evaluation. A server that does not have these
 * endpoints yet answers 404: the data is dropped quietly (one debug line), and the next
 * interval tries again, so counts start arriving once the server is upgraded.
 */

import { formatRfc3339 } from "../engine/time.js";
import { joinUrl, send, type FetchFn } from "./http.js";
import type { Logger } from "./log.js";

export interface InsightsOptions {
  /** Report evaluation counts and send tracked events (default true). */
  enabled?: boolean;
  /** How often counts and queued events are sent, in ms (default 60000). */
  flushIntervalMs?: number;
  /** Most tracked events kept while the server cannot be reached (default 10000). */
  maxQueuedEvents?: number;
}

/** A tracked event as sent to the server. */
export interface TrackedEvent {
  key: string;
  context: Record<string, unknown>;
  value?: number;
  timestamp: string;
}

const MAX_EVENTS_PER_REQUEST = 1000;

export class Insights {
  readonly enabled: boolean;
  private counts = new Map<string, Map<string, number>>();
  private windowStart = Date.now();
  private events: TrackedEvent[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly maxQueued: number;
  private droppedWarned = false;
  private missingNoted = new Set<string>();
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly base: string | undefined,
    private readonly key: string,
    private readonly fetchFn: FetchFn,
    private readonly logger: Logger,
    private readonly signal: AbortSignal,
    options: InsightsOptions | false | undefined,
  ) {
    const opts = options === false ? { enabled: false } : (options ?? {});
    this.enabled = opts.enabled !== false && base !== undefined;
    this.maxQueued = opts.maxQueuedEvents ?? 10_000;
    if (this.enabled) {
      this.timer = setInterval(() => void this.flush(), Math.max(100, opts.flushIntervalMs ?? 60_000));
      // Never keep a Node process alive just to report.
      (this.timer as { unref?: () => void }).unref?.();
    }
  }

  /** Counts one evaluation that served `variation` of flag `key`. */
  count(key: string, variation: string): void {
    let byVariation = this.counts.get(key);
    if (byVariation === undefined) {
      byVariation = new Map();
      this.counts.set(key, byVariation);
    }
    byVariation.set(variation, (byVariation.get(variation) ?? 0) + 1);
  }

  /** Queues a tracked event. */
  track(key: string, context: Record<string, unknown>, value?: number): void {
    if (!this.enabled) return;
    if (this.events.length >= this.maxQueued) {
      this.events.shift();
      if (!this.droppedWarned) {
        this.logger.warn(`more than ${this.maxQueued} tracked events queued; dropping the oldest`);
        this.droppedWarned = true;
      }
    }
    const event: TrackedEvent = { key, context, timestamp: formatRfc3339(Date.now()) };
    if (value !== undefined && Number.isFinite(value)) event.value = value;
    this.events.push(event);
  }

  /** Sends what is pending now (also called by the interval timer and on close). */
  flush(): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    this.flushing ??= this.doFlush().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Stops the timer and sends what is pending. */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private async doFlush(): Promise<void> {
    const counts = this.counts;
    const start = this.windowStart;
    this.counts = new Map();
    this.windowStart = Date.now();
    if (counts.size > 0) {
      const flags: Record<string, Record<string, number>> = {};
      for (const [key, byVariation] of counts) flags[key] = Object.fromEntries(byVariation);
      const body = { start: formatRfc3339(start), end: formatRfc3339(this.windowStart), flags };
      const ok = await this.post("api/v1/sdk/metrics", body);
      if (ok === "retry") {
        // Keep the counts for the next window (bounded: one entry per flag and variation).
        for (const [key, byVariation] of counts) {
          const current = this.counts.get(key) ?? new Map<string, number>();
          for (const [variation, n] of byVariation) current.set(variation, (current.get(variation) ?? 0) + n);
          this.counts.set(key, current);
        }
        this.windowStart = start;
      }
    }
    while (this.events.length > 0) {
      const batch = this.events.slice(0, MAX_EVENTS_PER_REQUEST);
      const ok = await this.post("api/v1/track", { events: batch });
      if (ok === "retry") break;
      this.events.splice(0, batch.length);
    }
  }

  /** Posts `body`: "done" when the server took it or will never take it, "retry" otherwise. */
  private async post(path: string, body: unknown): Promise<"done" | "retry"> {
    if (this.base === undefined) return "done";
    const url = joinUrl(this.base, path);
    try {
      // A flush at close time runs after the client's own signal has aborted.
      const signal = new AbortController().signal;
      const text = JSON.stringify(body);
      const { response, controller } = await send(
        this.fetchFn,
        url,
        {
          method: "POST",
          headers: { Authorization: `Bearer ${this.key}`, "Content-Type": "application/json" },
          body: text,
          // Lets a browser finish the request while the page unloads (small bodies only).
          keepalive: this.signal.aborted && text.length < 60_000,
        },
        10_000,
        signal,
      );
      void response.body?.cancel().catch(() => {});
      controller.abort();
      if (response.ok) return "done";
      if (response.status === 404 || response.status === 405) {
        if (!this.missingNoted.has(path)) {
          this.logger.debug(`the server has no /${path} yet (HTTP ${response.status}); insights are dropped until it does`);
          this.missingNoted.add(path);
        }
        return "done";
      }
      if (response.status >= 500 || response.status === 429) return "retry";
      this.logger.warn(`/${path} refused the data (HTTP ${response.status}); dropped`);
      return "done";
    } catch (e) {
      this.logger.debug(`sending insights failed: ${(e as Error).message}`);
      return "retry";
    }
  }
}
