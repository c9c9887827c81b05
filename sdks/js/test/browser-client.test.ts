/** The browser client (run in Node, with its fetch) against a scripted OFREP server. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { VexilBrowserClient, type CacheStorage } from "../src/browser.js";
import { delay, json, MockServer, recordingLogger, sse } from "./mock.js";
import { waitFor } from "./server.js";

class MemoryStorage implements CacheStorage {
  readonly items = new Map<string, string>();
  getItem(k: string) {
    return this.items.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.items.set(k, v);
  }
  removeItem(k: string) {
    this.items.delete(k);
  }
}

/** An OFREP bulk answer: `banner` depends on the plan in the context. */
function bulk(version: number, context: Record<string, unknown>) {
  return {
    flags: [
      { key: "banner", value: context.plan === "pro" ? "Pro" : "Free", reason: "TARGETING_MATCH", variant: context.plan === "pro" ? "pro" : "free", metadata: { flagVersion: version } },
      { key: "dark-mode", value: version > 1, reason: "STATIC", variant: version > 1 ? "on" : "off", metadata: { flagVersion: version } },
      { key: "split", errorCode: "TARGETING_KEY_MISSING", errorDetails: "flag 'split' splits by an attribute the context does not have" },
    ],
    metadata: { environmentVersion: version },
    eventStreams: [{ type: "sse", endpoint: { requestUri: "/ofrep/v1/event-stream?token=t" } }],
  };
}

function ofrepServer(state: { version: number; up: boolean; push?: (v: number) => void }) {
  return new MockServer((req, res) => {
    if (!state.up) return void res.destroy();
    if (req.path === "/ofrep/v1/evaluate/flags" && req.method === "POST") {
      const context = (JSON.parse(req.body) as { context: Record<string, unknown> }).context;
      const etag = `"${state.version}-${JSON.stringify(context).length}"`;
      if (req.headers["if-none-match"] === etag) return void res.writeHead(304, { ETag: etag }).end();
      return json(res, 200, bulk(state.version, context), { ETag: etag });
    }
    if (req.path === "/api/v1/sdk/stream") {
      const send = sse(res);
      state.push = (v) => send("refetch", v, { version: v });
      return;
    }
    json(res, 404, {});
  });
}

test("bulk evaluation, details, ETag, refetch events and context changes", async () => {
  const state = { version: 1, up: true } as { version: number; up: boolean; push?: (v: number) => void };
  const mock = ofrepServer(state);
  await mock.start();
  const storage = new MemoryStorage();
  const client = new VexilBrowserClient({
    url: mock.url,
    clientKey: "vx_cli_test",
    context: { targetingKey: "u1", plan: "free" },
    cache: storage,
    initialBackoffMs: 20,
    maxBackoffMs: 100,
    insights: false,
  });
  const changes: string[][] = [];
  client.on("change", (c) => changes.push([...c.keys]));
  try {
    await client.ready(2000);
    const first = mock.requests.find((r) => r.path === "/ofrep/v1/evaluate/flags")!;
    assert.equal(first.headers.authorization, "Bearer vx_cli_test");
    assert.deepEqual(JSON.parse(first.body), { context: { targetingKey: "u1", plan: "free" } });
    assert.equal(client.stringValue("banner", "x"), "Free");
    assert.deepEqual(client.stringDetail("banner", "x"), { value: "Free", variation: "free", reason: "TARGETING_MATCH", flagVersion: 1 });
    assert.equal(client.boolValue("dark-mode", true), false);
    assert.equal(client.boolDetail("banner", true).errorCode, "TYPE_MISMATCH");
    assert.equal(client.boolDetail("split", true).errorCode, "TARGETING_KEY_MISSING");
    assert.equal(client.boolDetail("nope", true).errorCode, "FLAG_NOT_FOUND");
    assert.equal(Object.keys(client.allFlags()).length, 3);

    // A change: the stream says refetch; the client evaluates again and reports it.
    await waitFor(() => state.push !== undefined, 2000, "the stream");
    state.version = 2;
    state.push!(2);
    await waitFor(() => client.boolValue("dark-mode", false), 2000, "the refetch");
    assert.deepEqual(changes.at(-1), ["dark-mode"], "banner's value did not change");
    // Nothing changed: a conditional request answered 304.
    state.push!(2);
    await waitFor(() => mock.requests.filter((r) => r.headers["if-none-match"] !== undefined).length > 0, 2000, "If-None-Match");
    // A new context: evaluated again at once.
    await client.setContext({ targetingKey: "u1", plan: "pro" });
    assert.equal(client.stringValue("banner", "x"), "Pro");
    assert.deepEqual(changes.at(-1), ["banner"]);
    assert.deepEqual(client.context(), { targetingKey: "u1", plan: "pro" });
  } finally {
    await client.close();
  }

  // A page that starts while the server is down gets the cached values for its context.
  state.up = false;
  mock.dropConnections();
  const offline = new VexilBrowserClient({
    url: mock.url,
    clientKey: "vx_cli_test",
    context: { plan: "pro", targetingKey: "u1" },
    cache: storage,
    initialBackoffMs: 20,
    maxBackoffMs: 50,
    insights: false,
    logger: recordingLogger().logger,
  });
  try {
    assert.equal(offline.status().state, "STALE");
    assert.equal(offline.stringValue("banner", "x"), "Pro");
    assert.equal(offline.boolValue("dark-mode", false), true);
    await delay(100);
    assert.equal(offline.status().state, "STALE", "still serving cached values");
    state.up = true;
    await offline.ready(3000);
  } finally {
    await offline.close();
    await mock.stop();
  }
  const other = new VexilBrowserClient({ url: mock.url, clientKey: "vx_cli_test", context: { targetingKey: "u2" }, cache: storage, insights: false, logger: recordingLogger().logger });
  assert.equal(other.status().state, "NOT_READY", "another context does not use the cache");
  assert.equal(other.boolDetail("dark-mode", true).errorCode, "CLIENT_NOT_READY");
  await other.close();
});

test("a rejected client key fails ready() and reports ERROR", async () => {
  const mock = new MockServer((_req, res) => void res.writeHead(401).end());
  await mock.start();
  const client = new VexilBrowserClient({ url: mock.url, clientKey: "vx_cli_bad", cache: false, insights: false, logger: recordingLogger().logger });
  try {
    await assert.rejects(client.ready(3000), /rejected the key/);
    assert.equal(client.status().state, "ERROR");
    assert.ok(client.status().keyRejected);
  } finally {
    await client.close();
    await mock.stop();
  }
});

test("constructor errors are clear", () => {
  assert.throws(() => new VexilBrowserClient({ url: "", clientKey: "k" }), /url/);
  assert.throws(() => new VexilBrowserClient({ url: "http://x", clientKey: "" }), /clientKey/);
});
