/**
 * The background loop that keeps a server client's data current: a first fetch of
 * `/api/v1/sdk/config`, then the SSE stream `/api/v1/sdk/stream`, resumed with
 * `Last-Event-ID`; reconnection with exponential backoff and jitter; polling the config
 * (`If-None-Match`) when streaming is off or keeps failing while the config endpoint works;
 * the last known good data throughout. It is the only writer of the store and the status.
 */

import type { Ruleset } from "../engine/model.js";
import { Backoff } from "../internal/backoff.js";
import { joinUrl, readEvents, readText, RequestError, send, sleep, type FetchFn, type StreamEnd } from "../internal/http.js";
import type { Logger } from "../internal/log.js";
import type { StatusCell } from "../internal/status.js";
import type { State } from "../types.js";
import { Cursor } from "./cursor.js";
import type { Store } from "./store.js";

export interface SyncOptions {
  url: string;
  sdkKey: string;
  fetch: FetchFn;
  logger: Logger;
  streaming: boolean;
  pollIntervalMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  backoffResetAfterMs: number;
  requestTimeoutMs: number;
  streamReadTimeoutMs: number;
  streamFailuresBeforePolling: number;
  streamRetryAfterMs: number;
  maxEventChars: number;
}

/** How long the rest of an update may take to arrive before the cursor resyncs. */
const UPDATE_GAP_MS = 2000;
/** How many consecutive fetches must answer an older version before the client follows. */
const OLDER_ANSWERS_ACCEPTED = 3;

export class Sync {
  private readonly cursor = new Cursor();
  private readonly backoff: Backoff;
  private warned = false;
  private olderAnswers = 0;
  private readonly configUrl: string;
  private readonly streamUrl: string;

  constructor(
    private readonly opts: SyncOptions,
    private readonly store: Store,
    private readonly status: StatusCell,
    private readonly changed: (keys: string[], version: number) => void,
    private readonly signal: AbortSignal,
  ) {
    this.backoff = new Backoff(opts.initialBackoffMs, opts.maxBackoffMs);
    this.configUrl = joinUrl(opts.url, "api/v1/sdk/config");
    this.streamUrl = joinUrl(opts.url, "api/v1/sdk/stream");
  }

  /** Runs until the signal aborts. */
  async run(): Promise<void> {
    try {
      await this.loop();
    } catch (e) {
      // Not expected: every step catches its own errors. Say so rather than fail silently.
      if (!this.signal.aborted) this.opts.logger.error("synchronisation stopped unexpectedly", e);
    }
    this.setStatus(this.store.version !== null ? "STALE" : "NOT_READY", "client closed");
  }

  private async loop(): Promise<void> {
    const o = this.opts;
    let needFetch = true;
    let fullFetch = false;
    let streamFailures = 0;
    let pollingSince: number | undefined = o.streaming ? undefined : Date.now();
    while (!this.signal.aborted) {
      if (needFetch) {
        try {
          await this.fetch(fullFetch);
          needFetch = false;
          fullFetch = false;
        } catch (e) {
          if (this.signal.aborted) return;
          this.failed(asRequestError(e));
          await sleep(this.backoff.next(), this.signal);
          continue;
        }
      }
      const streamNow = o.streaming && (pollingSince === undefined || Date.now() - pollingSince >= o.streamRetryAfterMs);
      if (!streamNow) {
        this.setStatus("READY", o.streaming ? "polling (streaming unavailable)" : "polling");
        await sleep(o.pollIntervalMs, this.signal);
        needFetch = true;
        continue;
      }
      if (pollingSince !== undefined) {
        pollingSince = undefined;
        streamFailures = 0;
      }
      const started = Date.now();
      const end = await this.stream();
      if (this.signal.aborted) return;
      if (end.resync !== undefined) {
        o.logger.warn(`stream out of sync (${end.resync}); fetching the whole ruleset`);
        needFetch = true;
        fullFetch = true;
        // A server that keeps sending what cannot be applied is not hammered.
        const delay = this.backoff.next();
        if (this.backoff.failures() > 1) await sleep(delay, this.signal);
        continue;
      }
      const connectedFor = end.connected ? Date.now() - started : 0;
      const healthy = end.received && connectedFor >= o.backoffResetAfterMs;
      if (healthy) this.backoff.reset();
      streamFailures = end.received ? 0 : streamFailures + 1;
      // A stream failure alone does not make the data stale: the conditional fetch that
      // follows (after the backoff) tells whether the server is reachable. Only a
      // rejected key is final enough to report at once.
      if (end.error?.keyRejected) this.failed(end.error);
      else o.logger.debug(`stream ended: ${end.error?.message ?? "closed by the server"}`);
      if (streamFailures >= o.streamFailuresBeforePolling) {
        o.logger.warn(`streaming unavailable after ${streamFailures} attempts; polling every ${o.pollIntervalMs} ms instead`);
        pollingSince = Date.now();
        needFetch = true;
        continue;
      }
      if (healthy) continue; // a long-lived stream ended (a server restart): resume at once
      await sleep(this.backoff.next(), this.signal);
      needFetch = true;
    }
  }

  /** Fetches the config (conditionally, unless `full`) and loads it. */
  private async fetch(full: boolean): Promise<void> {
    const o = this.opts;
    const known = full ? undefined : this.cursor.confirmed;
    const headers: Record<string, string> = { Authorization: `Bearer ${o.sdkKey}`, Accept: "application/json" };
    if (known !== undefined) headers["If-None-Match"] = `"${known}"`;
    const { response, controller } = await send(o.fetch, this.configUrl, { headers }, o.requestTimeoutMs, this.signal);
    try {
      await this.load(response);
    } finally {
      controller.abort();
    }
    this.recovered();
    // While streaming, the status says so once the stream is up.
    if (this.status.get().state !== "READY") this.setStatus("READY", o.streaming ? "ruleset fetched" : "polling");
  }

  /** Loads a config response: a new ruleset (200) or none (304). */
  private async load(response: Response): Promise<void> {
    const o = this.opts;
    if (response.status === 200) {
      const text = await readText(response, o.maxEventChars, o.requestTimeoutMs);
      let ruleset: Ruleset;
      try {
        ruleset = JSON.parse(text) as Ruleset;
      } catch (e) {
        throw new RequestError(`invalid response: the ruleset is not JSON (${(e as Error).message})`);
      }
      const held = this.store.version;
      const version = typeof ruleset?.version === "number" ? ruleset.version : 0;
      // An older version is most likely a cluster node that has not caught up: keep the
      // newer data and ask again. Only an older version that persists replaces it.
      if (held !== null && version < held) {
        this.olderAnswers++;
        if (this.olderAnswers < OLDER_ANSWERS_ACCEPTED) {
          throw new RequestError(`invalid response: version ${version} is older than the ${held} held; asking again`);
        }
        o.logger.warn(`the server went back to an older ruleset (${version} < ${held}); following it`);
      }
      this.olderAnswers = 0;
      let changed: string[];
      try {
        changed = this.store.replace(ruleset);
      } catch (e) {
        throw new RequestError(`invalid response: ${(e as Error).message}`);
      }
      this.cursor.loaded(version);
      this.changed(changed, version);
    } else if (response.status !== 304) {
      void response.body?.cancel().catch(() => {});
      throw new RequestError(`HTTP ${response.status} from ${this.configUrl}`, response.status);
    }
  }

  /** One stream connection, from connect to close. */
  private async stream(): Promise<StreamEnd & { connected: boolean }> {
    const o = this.opts;
    const headers: Record<string, string> = {
      Authorization: `Bearer ${o.sdkKey}`,
      Accept: "text/event-stream",
      "Cache-Control": "no-cache",
    };
    if (this.cursor.confirmed !== undefined) headers["Last-Event-ID"] = String(this.cursor.confirmed);
    let opened;
    try {
      opened = await send(o.fetch, this.streamUrl, { headers }, o.requestTimeoutMs, this.signal);
    } catch (e) {
      return { received: false, connected: false, error: asRequestError(e) };
    }
    const { response, controller } = opened;
    if (response.status !== 200) {
      controller.abort();
      return { received: false, connected: false, error: new RequestError(`HTTP ${response.status} from ${this.streamUrl}`, response.status) };
    }
    if (!(response.headers.get("content-type") ?? "").trimStart().startsWith("text/event-stream")) {
      controller.abort();
      return { received: false, connected: false, error: new RequestError("invalid response: the stream is not text/event-stream") };
    }
    this.recovered();
    this.setStatus("READY", "streaming");
    this.cursor.reconnected();
    const end = await readEvents(
      response,
      controller,
      {
        maxEventChars: o.maxEventChars,
        readTimeoutMs: () => (this.cursor.waiting() ? Math.min(UPDATE_GAP_MS, o.streamReadTimeoutMs) : o.streamReadTimeoutMs),
      },
      (event) => {
        const handled = this.cursor.handle(this.store, event);
        if ("resync" in handled) return handled.resync;
        this.status.setVersion(this.store.version);
        this.changed(handled.changed, handled.version);
        return undefined;
      },
    );
    if (end.timedOut && this.cursor.waiting()) return { ...end, connected: true, resync: "an update stayed incomplete" };
    return { ...end, connected: true };
  }

  /** Records a failure: STALE when data is loaded (last known good), else ERROR. */
  private failed(error: RequestError): void {
    if (this.warned) this.opts.logger.debug(`still unreachable: ${error.message}`);
    else {
      this.opts.logger.warn(`server unreachable; serving the last known flag data (${error.message})`);
      this.warned = true;
    }
    const state: State = error.keyRejected || this.store.version === null ? "ERROR" : "STALE";
    this.setStatus(state, error.message, error.keyRejected);
  }

  private recovered(): void {
    if (this.warned) {
      this.opts.logger.info("server reachable again");
      this.warned = false;
    }
  }

  private setStatus(state: State, reason: string, keyRejected = false): void {
    this.status.set(state, reason, this.store.version, keyRejected);
  }
}

function asRequestError(e: unknown): RequestError {
  return e instanceof RequestError ? e : new RequestError(e instanceof Error ? e.message : String(e));
}
