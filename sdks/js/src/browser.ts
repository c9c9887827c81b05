/**
 * `@vexil/sdk/browser`: the client for browsers (client API keys). No Node.js modules.
 */

export { VexilBrowserClient } from "./browser/client.js";
export type { BrowserEvaluationDetail, CacheStorage, VexilBrowserClientOptions } from "./browser/client.js";
export { VexilInitError } from "./types.js";
export type { ClientEvents, ClientStatus, FlagChange, State } from "./types.js";
export type { Context, JsonValue } from "./engine/model.js";
export type { InsightsOptions } from "./internal/insights.js";
export type { Logger } from "./internal/log.js";
export type { FetchFn } from "./internal/http.js";
