/**
 * `@vexil/sdk/openfeature/server`: an OpenFeature provider for `@openfeature/server-sdk`
 * that evaluates locally with a `VexilClient` (server API key).
 *
 * Provider events: READY once the client has the server's data; STALE when it serves its
 * last known data because the server is away; READY again when it is back;
 * CONFIGURATION_CHANGED with the changed flag keys on every update; ERROR when the key is
 * rejected or no data can be had. `track()` is forwarded to the client.
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
} from "@openfeature/server-sdk";

import type { Context } from "../engine/model.js";
import { VexilClient, type VexilClientOptions } from "../server/client.js";
import type { ClientStatus } from "../types.js";
import { errorCodeOf, flagMetadata } from "./shared.js";

export interface VexilProviderOptions {
  /** How long `initialize` waits for the server's data (default 10000 ms). */
  readyTimeoutMs?: number;
}

export class VexilProvider implements Provider {
  readonly metadata = { name: "vexil" } as const;
  readonly runsOn = "server" as const;
  readonly events = new OpenFeatureEventEmitter();
  /** The client this provider evaluates with. */
  readonly client: VexilClient;
  private readonly ownsClient: boolean;
  private initialized = false;
  private lastState: ClientStatus["state"] | undefined;
  private readonly unsubscribe: (() => void)[] = [];

  /** From a client (which the provider does not close) or from client options. */
  constructor(
    client: VexilClient | VexilClientOptions,
    private readonly options: VexilProviderOptions = {},
  ) {
    this.ownsClient = !(client instanceof VexilClient);
    this.client = client instanceof VexilClient ? client : new VexilClient(client);
    this.unsubscribe.push(
      this.client.on("status", (s) => this.onStatus(s)),
      this.client.on("change", (c) => {
        if (this.initialized) this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: [...c.keys] });
      }),
    );
  }

  async initialize(): Promise<void> {
    try {
      await this.client.ready(this.options.readyTimeoutMs ?? 10_000);
    } catch (e) {
      // With data to serve (a bootstrap ruleset), start STALE rather than fail.
      if (this.client.status().state !== "STALE") throw e;
      this.initialized = true;
      this.lastState = "STALE";
      queueMicrotask(() => this.events.emit(ProviderEvents.Stale, { message: this.client.status().reason }));
      return;
    }
    this.initialized = true;
    this.lastState = "READY";
  }

  async onClose(): Promise<void> {
    for (const u of this.unsubscribe.splice(0)) u();
    if (this.ownsClient) await this.client.close();
  }

  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean, context: EvaluationContext): Promise<ResolutionDetails<boolean>> {
    return Promise.resolve(this.resolve(flagKey, defaultValue, context, "boolean", (v) => typeof v === "boolean"));
  }

  resolveStringEvaluation(flagKey: string, defaultValue: string, context: EvaluationContext): Promise<ResolutionDetails<string>> {
    return Promise.resolve(this.resolve(flagKey, defaultValue, context, "string", (v) => typeof v === "string"));
  }

  resolveNumberEvaluation(flagKey: string, defaultValue: number, context: EvaluationContext): Promise<ResolutionDetails<number>> {
    return Promise.resolve(this.resolve(flagKey, defaultValue, context, "number", (v) => typeof v === "number"));
  }

  resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T, context: EvaluationContext): Promise<ResolutionDetails<T>> {
    return Promise.resolve(
      this.resolve(flagKey, defaultValue, context, "object", (v) => typeof v === "object" && v !== null),
    );
  }

  track(trackingEventName: string, context: EvaluationContext, details: TrackingEventDetails): void {
    this.client.track(trackingEventName, context as Context, details?.value);
  }

  private resolve<T>(
    flagKey: string,
    defaultValue: T,
    context: EvaluationContext,
    typeName: string,
    accepts: (v: unknown) => boolean,
  ): ResolutionDetails<T> {
    const outcome = this.client.outcome(flagKey, (context ?? {}) as Context);
    if (outcome === undefined) {
      return { value: defaultValue, reason: "ERROR", errorCode: ErrorCode.PROVIDER_NOT_READY, errorMessage: "no flag data yet" };
    }
    const d = outcome.detail;
    if (d.variation === null) {
      const code = d.reason.error_code ?? "GENERAL";
      return {
        value: defaultValue,
        reason: "ERROR",
        errorCode: errorCodeOf(code) as ErrorCode,
        errorMessage: code === "FLAG_NOT_FOUND" ? `flag '${flagKey}' was not found` : `flag '${flagKey}': ${code}`,
        flagMetadata: flagMetadata(d.flagVersion, d.reason),
      };
    }
    if (!accepts(d.value)) {
      return {
        value: defaultValue,
        reason: "ERROR",
        errorCode: ErrorCode.TYPE_MISMATCH,
        errorMessage: `flag '${flagKey}' is not a ${typeName} flag`,
        flagMetadata: flagMetadata(d.flagVersion, d.reason),
      };
    }
    this.client.countEvaluation(flagKey, d.variation);
    return {
      value: d.value as T,
      variant: d.variation,
      reason: outcome.openFeatureReason,
      flagMetadata: flagMetadata(d.flagVersion, d.reason),
    };
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

export { VexilClient };
export type { VexilClientOptions };
