/**
 * `@vexil/sdk`: the server-side client (server API keys, local evaluation) and the
 * evaluation engine. Browsers use `@vexil/sdk/browser`; OpenFeature providers are in
 * `@vexil/sdk/openfeature/server` and `@vexil/sdk/openfeature/web`.
 */

export { VexilClient } from "./server/client.js";
export type { VexilClientOptions } from "./server/client.js";
export { VexilInitError } from "./types.js";
export type { ClientEvents, ClientStatus, FlagChange, State } from "./types.js";
export type { InsightsOptions } from "./internal/insights.js";
export type { Logger } from "./internal/log.js";
export type { FetchFn } from "./internal/http.js";
export * from "./engine/index.js";
