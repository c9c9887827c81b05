/**
 * `@vexil/sdk/openfeature/web`: an OpenFeature provider for `@openfeature/web-sdk` backed
 * by a `VexilBrowserClient` (client API key, OFREP bulk evaluation). No Node.js modules.
 *
 * Provider events: READY once values for the context are in; STALE while the server is
 * away (cached or last values are served); READY again when it is back;
 * CONFIGURATION_CHANGED with the changed flag keys; ERROR when the key is rejected or no
 * values can be had. Context changes are reconciled by evaluating again.
 */

import {
  ErrorCode,
  OpenFeatureEventEmitter,
  ProviderEvents,
  type EvaluationContext,
  type JsonValue,
  type Provider,
  type ResolutionDetails,
  type TrackingEventDetails,
} from "@openfeature/web-sdk";

import { VexilBrowserClient, type BrowserEvaluationDetail, type VexilBrowserClientOptions } from "../browser/client.js";
import type { Context } from "../engine/model.js";
import type { ClientStatus } from "../types.js";
import { errorCodeOf, flagMetadata } from "./shared.js";

export interface VexilWebProviderOptions {
  /** How long `initialize` waits for values (default 10000 ms). */
  readyTimeoutMs?: number;
}

export class VexilWebProvider implements Provider {
  readonly metadata = { name: "vexil-web" } as const;
  readonly runsOn = "client" as const;
  readonly events = new OpenFeatureEventEmitter();
  readonly client: VexilBrowserClient;
  private readonly ownsClient: boolean;
  private initialized = false;
  private lastState: ClientStatus["state"] | undefined;
  private readonly unsubscribe: (() => void)[] = [];

  /** From a client (which the provider does not close) or from client options. */
  constructor(
    client: VexilBrowserClient | VexilBrowserClientOptions,
    private readonly options: VexilWebProviderOptions = {},
  ) {
    this.ownsClient = !(client instanceof VexilBrowserClient);
    this.client = client instanceof VexilBrowserClient ? client : new VexilBrowserClient(client);
    this.unsubscribe.push(
      this.client.on("status", (s) => this.onStatus(s)),
      this.client.on("change", (c) => {
        if (this.initialized) this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: [...c.keys] });
      }),
    );
  }

  async initialize(context?: EvaluationContext): Promise<void> {
    if (context !== undefined && Object.keys(context).length > 0) await this.client.setContext(context as Context);
    try {
      await this.client.ready(this.options.readyTimeoutMs ?? 10_000);
    } catch (e) {
      if (this.client.status().state !== "STALE") throw e;
      this.initialized = true;
      this.lastState = "STALE";
      queueMicrotask(() => this.events.emit(ProviderEvents.Stale, { message: this.client.status().reason }));
      return;
    }
    this.initialized = true;
    this.lastState = "READY";
  }

  async onContextChange(_old: EvaluationContext, next: EvaluationContext): Promise<void> {
    await this.client.setContext(next as Context);
  }

  async onClose(): Promise<void> {
    for (const u of this.unsubscribe.splice(0)) u();
    if (this.ownsClient) await this.client.close();
  }

  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean): ResolutionDetails<boolean> {
    return toResolution(this.client.boolDetail(flagKey, defaultValue));
  }

  resolveStringEvaluation(flagKey: string, defaultValue: string): ResolutionDetails<string> {
    return toResolution(this.client.stringDetail(flagKey, defaultValue));
  }

  resolveNumberEvaluation(flagKey: string, defaultValue: number): ResolutionDetails<number> {
    return toResolution(this.client.numberDetail(flagKey, defaultValue));
  }

  resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T): ResolutionDetails<T> {
    const d = this.client.jsonDetail<T>(flagKey, defaultValue);
    if (d.errorCode === undefined && (typeof d.value !== "object" || d.value === null)) {
      return { value: defaultValue, reason: "ERROR", errorCode: ErrorCode.TYPE_MISMATCH, errorMessage: `flag '${flagKey}' is not an object flag` };
    }
    return toResolution(d);
  }

  track(trackingEventName: string, _context: EvaluationContext, details: TrackingEventDetails): void {
    this.client.track(trackingEventName, details?.value);
  }

  private onStatus(s: ClientStatus): void {
    if (!this.initialized || s.state === this.lastState) return;
    this.lastState = s.state;
    switch (s.state) {
      case "READY":
        this.events.emit(ProviderEvents.Ready, { message: s.reason });
        break;
      case "STALE":
        this.events.emit(ProviderEvents.Stale, { message: s.reason });
        break;
      case "ERROR":
        this.events.emit(ProviderEvents.Error, { message: s.reason, errorCode: ErrorCode.GENERAL });
        break;
      default:
        break;
    }
  }
}

function toResolution<T>(d: BrowserEvaluationDetail<T>): ResolutionDetails<T> {
  const out: ResolutionDetails<T> = { value: d.value, reason: d.reason, flagMetadata: flagMetadata(d.flagVersion) };
  if (d.variation !== null) out.variant = d.variation;
  if (d.errorCode !== undefined) {
    out.errorCode = errorCodeOf(d.errorCode) as ErrorCode;
    out.errorMessage = d.errorMessage ?? d.errorCode;
  }
  return out;
}

export { VexilBrowserClient };
export type { VexilBrowserClientOptions };
