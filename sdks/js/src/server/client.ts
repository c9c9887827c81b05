/**
 * `VexilClient`: the server-side client. Flags are evaluated in process by the TypeScript
 * port of Vexil's engine, against the environment's ruleset, which a background loop keeps
 * current (see sync.ts). Evaluations never wait for the network and never throw: any
 * error serves the caller's default, and the `…Detail` getters say why.
 */

import { readFileSync } from "node:fs";

import type { Context, ErrorCode, EvaluationDetail, JsonValue, Reason, Ruleset } from "../engine/model.js";
import type { Outcome } from "../engine/snapshot.js";
import { Emitter } from "../internal/emitter.js";
import type { FetchFn } from "../internal/http.js";
import { Insights, type InsightsOptions } from "../internal/insights.js";
import { consoleLogger, type Logger } from "../internal/log.js";
import { StatusCell, waitReady } from "../internal/status.js";
import type { ClientEvents, ClientStatus, FlagChange } from "../types.js";
import { Store } from "./store.js";
import { Sync } from "./sync.js";

export interface VexilClientOptions {
  /** The Vexil server, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  url?: string;
  /** A server API key of one environment (`vx_srv_…`). */
  sdkKey?: string;
  /**
   * A ruleset to evaluate until the server answers (or for good when `offline`): the
   * document `GET /api/v1/sdk/config` returns, as an object or JSON text.
   */
  bootstrap?: Ruleset | string;
  /** As `bootstrap`, read from a file (synchronously, when the client is created). */
  bootstrapFile?: string;
  /** Never contact the server: evaluate the bootstrap ruleset only. */
  offline?: boolean;
  /** Follow the SSE stream (default true); false polls every `pollIntervalMs` instead. */
  streaming?: boolean;
  /** How often to poll when streaming is off or unavailable (default 30000 ms). */
  pollIntervalMs?: number;
  /** Reconnection backoff: first wait up to this long, doubling (default 1000 ms)… */
  initialBackoffMs?: number;
  /** …up to this long (default 30000 ms); each wait is randomised to half–all of it. */
  maxBackoffMs?: number;
  /** A stream connected this long resets the backoff (default 60000 ms). */
  backoffResetAfterMs?: number;
  /** Timeout of a config fetch and of a stream's response headers (default 30000 ms). */
  requestTimeoutMs?: number;
  /** A stream silent this long (no event, no heartbeat) is reconnected (default 45000 ms). */
  streamReadTimeoutMs?: number;
  /**
   * After `failures` stream attempts in a row that received nothing while the config
   * endpoint answered, poll instead, trying the stream again after `retryAfterMs`
   * (defaults 3 and 300000 ms).
   */
  pollingFallback?: { failures?: number; retryAfterMs?: number };
  /** The largest ruleset or stream event accepted, in characters (default 64 Mi). */
  maxEventChars?: number;
  /** Evaluation counts and `track()` events; `false` switches both off. */
  insights?: InsightsOptions | false;
  /** Where background messages go (default: warnings and errors to the console). */
  logger?: Logger;
  /** The `fetch` to use (default: the global one). */
  fetch?: FetchFn;
  /** The clock for `$now` clauses, in epoch ms (default `Date.now`). */
  now?: () => number;
}

const NOT_READY_REASON: Reason = Object.freeze({ kind: "ERROR", in_rollout: false, error_code: "CLIENT_NOT_READY" }) as Reason;

function errorDetail<T>(value: T, code: ErrorCode, flagVersion: number | null): EvaluationDetail<T> {
  return { value, variation: null, reason: { kind: "ERROR", in_rollout: false, error_code: code }, flagVersion };
}

function readBootstrap(options: VexilClientOptions): Ruleset | undefined {
  if (options.bootstrapFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.bootstrapFile, "utf8");
    } catch (e) {
      throw new Error(`cannot read bootstrap ruleset ${options.bootstrapFile}: ${(e as Error).message}`);
    }
    try {
      return JSON.parse(text) as Ruleset;
    } catch (e) {
      throw new Error(`bootstrap ruleset ${options.bootstrapFile} is not JSON: ${(e as Error).message}`);
    }
  }
  if (typeof options.bootstrap === "string") {
    try {
      return JSON.parse(options.bootstrap) as Ruleset;
    } catch (e) {
      throw new Error(`bootstrap ruleset is not JSON: ${(e as Error).message}`);
    }
  }
  return options.bootstrap;
}

/**
 * A Vexil client for servers: evaluates flags locally against the environment's ruleset.
 * Create one per process and reuse it; call `close()` when done (an open stream keeps a
 * Node process alive).
 */
export class VexilClient {
  private readonly store = new Store();
  private readonly events: Emitter<ClientEvents>;
  private readonly statusCell: StatusCell;
  private readonly closer = new AbortController();
  private readonly logger: Logger;
  private readonly insights: Insights;
  private readonly clock: (() => number) | undefined;
  private readonly running: Promise<void>;

  constructor(options: VexilClientOptions) {
    this.logger = options.logger ?? consoleLogger;
    this.clock = options.now;
    this.events = new Emitter((e) => this.logger.error("a listener threw", e));
    const offline = options.offline === true;
    const bootstrap = readBootstrap(options);
    if (offline && bootstrap === undefined) throw new Error("offline mode needs a bootstrap ruleset (bootstrap or bootstrapFile)");
    if (!offline) {
      if (!options.url) throw new Error("`url` is required (the Vexil server, e.g. http://127.0.0.1:8080)");
      try {
        new URL(options.url);
      } catch {
        throw new Error(`invalid server URL ${JSON.stringify(options.url)}`);
      }
      if (!options.sdkKey) throw new Error("`sdkKey` is required (a server API key, vx_srv_…)");
    }
    if (bootstrap !== undefined) {
      // An invalid bootstrap throws RulesetError, listing every problem with its path.
      this.store.replace(bootstrap);
      this.warnUnsupported();
    }
    const initial = offline
      ? (["READY", "offline"] as const)
      : bootstrap !== undefined
        ? (["STALE", "bootstrap ruleset; the server has not answered yet"] as const)
        : (["NOT_READY", "connecting"] as const);
    this.statusCell = new StatusCell(initial[0], initial[1], (s) => this.events.emit("status", s));
    this.statusCell.setVersion(this.store.version);

    const fetchFn: FetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.insights = new Insights(offline ? undefined : options.url, options.sdkKey ?? "", fetchFn, this.logger, this.closer.signal, options.insights);
    if (offline) {
      this.running = Promise.resolve();
      return;
    }
    const sync = new Sync(
      {
        url: options.url!,
        sdkKey: options.sdkKey!,
        fetch: fetchFn,
        logger: this.logger,
        streaming: options.streaming !== false,
        pollIntervalMs: Math.max(1, options.pollIntervalMs ?? 30_000),
        initialBackoffMs: Math.max(1, options.initialBackoffMs ?? 1000),
        maxBackoffMs: options.maxBackoffMs ?? 30_000,
        backoffResetAfterMs: options.backoffResetAfterMs ?? 60_000,
        requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
        streamReadTimeoutMs: options.streamReadTimeoutMs ?? 45_000,
        streamFailuresBeforePolling: Math.max(1, options.pollingFallback?.failures ?? 3),
        streamRetryAfterMs: options.pollingFallback?.retryAfterMs ?? 300_000,
        maxEventChars: Math.max(1024, options.maxEventChars ?? 64 * 1024 * 1024),
      },
      this.store,
      this.statusCell,
      (keys, version) => {
        if (keys.length > 0) {
          this.warnUnsupported();
          this.events.emit("change", Object.freeze({ keys: Object.freeze(keys), version }));
        }
      },
      this.closer.signal,
    );
    this.running = sync.run();
  }

  /**
   * Resolves once the client has the server's current data (status READY); rejects with a
   * `VexilInitError` after `timeoutMs` (default 10 s), when the server rejects the key, or
   * when the client is closed first. Evaluating before that is allowed: it serves the
   * bootstrap ruleset or the callers' defaults.
   */
  ready(timeoutMs = 10_000): Promise<void> {
    return waitReady(() => this.statusCell.get(), (f) => this.events.on("status", f), this.closer.signal, timeoutMs);
  }

  /** The current status: NOT_READY, READY, STALE or ERROR, why, and the data's version. */
  status(): ClientStatus {
    return this.statusCell.get();
  }

  /** Listens to `change` (flags whose evaluation may have changed) or `status` events. */
  on<K extends keyof ClientEvents>(event: K, listener: (payload: ClientEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  off<K extends keyof ClientEvents>(event: K, listener: (payload: ClientEvents[K]) => void): void {
    this.events.off(event, listener);
  }

  /** Calls `listener` whenever flag `key`'s evaluation may have changed. */
  onFlagChange(key: string, listener: (change: FlagChange) => void): () => void {
    return this.events.on("change", (c) => {
      if (c.keys.includes(key)) listener(c);
    });
  }

  /** A boolean flag's value for `context`, or `defaultValue` on any error. */
  boolValue(key: string, context: Context, defaultValue: boolean): boolean {
    const o = this.outcome(key, context);
    const v = o?.detail.value;
    if (typeof v !== "boolean") return defaultValue;
    this.insights.count(key, o!.detail.variation!);
    return v;
  }

  /** A string flag's value, or `defaultValue`. */
  stringValue(key: string, context: Context, defaultValue: string): string {
    const o = this.outcome(key, context);
    const v = o?.detail.value;
    if (typeof v !== "string") return defaultValue;
    this.insights.count(key, o!.detail.variation!);
    return v;
  }

  /** A number flag's value, or `defaultValue`. */
  numberValue(key: string, context: Context, defaultValue: number): number {
    const o = this.outcome(key, context);
    const v = o?.detail.value;
    if (typeof v !== "number") return defaultValue;
    this.insights.count(key, o!.detail.variation!);
    return v;
  }

  /** Any flag's value as JSON (frozen: shared, read-only), or `defaultValue`. */
  jsonValue<T extends JsonValue = JsonValue>(key: string, context: Context, defaultValue: T): T {
    const o = this.outcome(key, context);
    if (o === undefined || o.detail.variation === null) return defaultValue;
    this.insights.count(key, o.detail.variation);
    return o.detail.value as T;
  }

  boolDetail(key: string, context: Context, defaultValue: boolean): EvaluationDetail<boolean> {
    return this.detail(key, context, defaultValue, (v) => typeof v === "boolean");
  }

  stringDetail(key: string, context: Context, defaultValue: string): EvaluationDetail<string> {
    return this.detail(key, context, defaultValue, (v) => typeof v === "string");
  }

  numberDetail(key: string, context: Context, defaultValue: number): EvaluationDetail<number> {
    return this.detail(key, context, defaultValue, (v) => typeof v === "number");
  }

  jsonDetail<T extends JsonValue = JsonValue>(key: string, context: Context, defaultValue: T): EvaluationDetail<T> {
    return this.detail(key, context, defaultValue, (v) => v !== null);
  }

  /**
   * Every flag evaluated for `context`, by key. Errors (e.g. TARGETING_KEY_MISSING) have a
   * `null` value and their reason. Empty before the client has data. Not counted in
   * evaluation insights.
   */
  evaluateAll(context: Context): Record<string, EvaluationDetail<JsonValue | null>> {
    const snapshot = this.store.snapshot;
    const out: Record<string, EvaluationDetail<JsonValue | null>> = {};
    if (snapshot === null) return out;
    try {
      for (const [key, o] of snapshot.evaluateAll(context ?? {}, this.now(snapshot.readsNow))) out[key] = o.detail;
    } catch (e) {
      this.logger.error("evaluation failed unexpectedly", e);
    }
    return out;
  }

  /** The keys of every flag the client knows, sorted. */
  flagKeys(): string[] {
    return this.store.snapshot?.flagKeys() ?? [];
  }

  /**
   * Records an event for experiments and release guards (`POST /api/v1/track`): sent in
   * the background, best effort. `value` is an optional number (a duration, an amount…).
   */
  track(key: string, context: Context, value?: number): void {
    this.insights.track(key, { ...(context ?? {}) }, value);
  }

  /** Sends pending evaluation counts and tracked events now. */
  flush(): Promise<void> {
    return this.insights.flush();
  }

  /** Stops synchronising, sends pending insights, and removes every listener. */
  async close(): Promise<void> {
    if (!this.closer.signal.aborted) this.closer.abort();
    await this.running;
    await this.insights.close();
    this.events.clear();
  }

  /** @internal The engine's outcome (with the OpenFeature reason), or undefined without data. */
  outcome(key: string, context: Context): Outcome | undefined {
    const snapshot = this.store.snapshot;
    if (snapshot === null) return undefined;
    try {
      return snapshot.evaluate(key, context ?? {}, snapshot.readsNow ? this.now(true) : 0);
    } catch (e) {
      this.logger.error(`evaluating '${key}' failed unexpectedly`, e);
      return undefined;
    }
  }

  /** @internal Counts an evaluation served through another API (the OpenFeature provider). */
  countEvaluation(key: string, variation: string): void {
    this.insights.count(key, variation);
  }

  private detail<T>(key: string, context: Context, defaultValue: T, accepts: (v: unknown) => boolean): EvaluationDetail<T> {
    if (this.store.snapshot === null) return { value: defaultValue, variation: null, reason: NOT_READY_REASON, flagVersion: null };
    const o = this.outcome(key, context);
    if (o === undefined) return errorDetail(defaultValue, "GENERAL", null);
    const d = o.detail;
    if (d.variation === null) return { ...d, value: defaultValue };
    if (!accepts(d.value)) return errorDetail(defaultValue, "TYPE_MISMATCH", d.flagVersion);
    this.insights.count(key, d.variation);
    return d as EvaluationDetail<T>;
  }

  private now(needed: boolean): number {
    if (!needed) return 0;
    return this.clock ? this.clock() : Date.now();
  }

  private warnedPatterns = new Set<string>();

  private warnUnsupported(): void {
    for (const w of this.store.snapshot?.warnings ?? []) {
      const text = `${w.path}: ${w.message}`;
      if (this.warnedPatterns.has(text)) continue;
      this.warnedPatterns.add(text);
      this.logger.warn(`a 'matches' pattern JavaScript cannot run never matches here (${text})`);
    }
  }
}
