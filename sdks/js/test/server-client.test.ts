/** The server client against a scripted HTTP server, and offline. */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { RulesetError, VexilClient, VexilInitError, type Ruleset } from "../src/index.js";
import { boolFlag, delay, json, MockServer, recordingLogger, sse } from "./mock.js";
import { waitFor } from "./server.js";

const ruleset = (version: number, enabled = true): Ruleset =>
  ({
    version,
    flags: {
      "new-checkout": boolFlag({
        enabled,
        version,
        fallthrough: { variation: "off" },
        rules: [{ id: "staff", clauses: [{ attribute: "email", op: "ends_with", values: ["@acme.com"] }], serve: { variation: "on" } }],
      }),
      banner: { type: "string", variations: [{ key: "a", value: "Hello" }], enabled: true, off_variation: "a", fallthrough: { variation: "a" } },
      limits: { type: "json", variations: [{ key: "a", value: { max: 3 } }], enabled: true, off_variation: "a", fallthrough: { variation: "a" } },
      rate: { type: "number", variations: [{ key: "a", value: 0.25 }], enabled: true, off_variation: "a", fallthrough: { variation: "a" } },
      split: boolFlag({ fallthrough: { rollout: { variations: [{ variation: "on", weight: 50000 }, { variation: "off", weight: 50000 }] } } }),
    },
    segments: {},
  }) as unknown as Ruleset;

const staff = { targetingKey: "u1", email: "ann@acme.com" };
const fast = { initialBackoffMs: 20, maxBackoffMs: 100 };

test("offline with a bootstrap ruleset: typed values, details and errors", async () => {
  const client = new VexilClient({ offline: true, bootstrap: ruleset(3), insights: false });
  await client.ready(100);
  assert.equal(client.status().state, "READY");
  assert.equal(client.status().version, 3);
  assert.equal(client.boolValue("new-checkout", staff, false), true);
  assert.equal(client.boolValue("new-checkout", { targetingKey: "u2" }, true), false);
  assert.equal(client.stringValue("banner", {}, "x"), "Hello");
  assert.equal(client.numberValue("rate", {}, 1), 0.25);
  assert.deepEqual(client.jsonValue("limits", {}, {}), { max: 3 });
  assert.deepEqual(client.boolDetail("new-checkout", staff, false), {
    value: true,
    variation: "on",
    reason: { kind: "RULE_MATCH", rule_id: "staff", rule_index: 0, in_rollout: false },
    flagVersion: 3,
  });
  assert.deepEqual(client.boolDetail("banner", {}, false), {
    value: false,
    variation: null,
    reason: { kind: "ERROR", in_rollout: false, error_code: "TYPE_MISMATCH" },
    flagVersion: 0,
  });
  assert.equal(client.stringDetail("nope", {}, "d").reason.error_code, "FLAG_NOT_FOUND");
  assert.equal(client.boolDetail("split", {}, true).reason.error_code, "TARGETING_KEY_MISSING");
  assert.equal(client.boolValue("split", {}, true), true, "the default on an error");
  assert.deepEqual(client.flagKeys(), ["banner", "limits", "new-checkout", "rate", "split"]);
  const all = client.evaluateAll({ targetingKey: "u1" });
  assert.equal(all["split"]!.reason.in_rollout, true);
  assert.equal(Object.keys(all).length, 5);
  await client.close();
});

test("bootstrap from JSON text or a file; clear errors for bad input", () => {
  const dir = mkdtempSync(join(tmpdir(), "vexil-bootstrap-"));
  try {
    const file = join(dir, "ruleset.json");
    writeFileSync(file, JSON.stringify(ruleset(4)));
    const fromFile = new VexilClient({ offline: true, bootstrapFile: file, insights: false });
    assert.equal(fromFile.status().version, 4);
    const fromText = new VexilClient({ offline: true, bootstrap: JSON.stringify(ruleset(5)), insights: false });
    assert.equal(fromText.boolValue("new-checkout", staff, false), true);
    assert.throws(() => new VexilClient({ offline: true, bootstrapFile: join(dir, "missing.json") }), /cannot read bootstrap ruleset .*missing\.json/);
    assert.throws(() => new VexilClient({ offline: true, bootstrap: "{" }), /bootstrap ruleset is not JSON/);
    assert.throws(
      () => new VexilClient({ offline: true, bootstrap: { flags: { x: { type: "boolean" } } } as unknown as Ruleset }),
      (e: unknown) => e instanceof RulesetError && /flags\.x\.variations/.test(e.message),
    );
    assert.throws(() => new VexilClient({ offline: true }), /offline mode needs a bootstrap ruleset/);
    assert.throws(() => new VexilClient({ url: "not a url", sdkKey: "k" }), /invalid server URL/);
    assert.throws(() => new VexilClient({ url: "http://127.0.0.1:1" }), /sdkKey/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("streaming: put, patch and delete; Last-Event-ID and If-None-Match after a cut", async () => {
  let send: ReturnType<typeof sse> | undefined;
  const mock = new MockServer((req, res) => {
    if (req.path === "/api/v1/sdk/config") {
      // After the first fetch the client is always up to date (the stream carries the rest).
      if (req.headers["if-none-match"] !== undefined) return void res.writeHead(304).end();
      return json(res, 200, ruleset(2), { ETag: '"2"' });
    }
    if (req.path === "/api/v1/sdk/stream") {
      send = sse(res);
      if (req.headers["last-event-id"] === undefined) send("put", 2, ruleset(2));
      return;
    }
    json(res, 404, {});
  });
  await mock.start();
  const client = new VexilClient({ url: mock.url, sdkKey: "vx_srv_test", ...fast, insights: false });
  const changes: string[][] = [];
  client.on("change", (c) => changes.push([...c.keys]));
  try {
    await client.ready(2000);
    await waitFor(() => client.status().reason === "streaming", 2000, "streaming");
    const config = mock.requests.find((r) => r.path === "/api/v1/sdk/config")!;
    assert.equal(config.headers.authorization, "Bearer vx_srv_test");
    send!("patch", 3, { kind: "flag", key: "new-checkout", version: 3, value: (ruleset(3, false).flags as Record<string, unknown>)["new-checkout"] });
    await waitFor(() => !client.boolValue("new-checkout", staff, true), 2000, "the patch");
    send!("delete", 4, { kind: "flag", key: "banner", version: 4 });
    await waitFor(() => client.stringValue("banner", {}, "gone") === "gone", 2000, "the delete");
    assert.deepEqual(changes.at(-2), ["new-checkout"]);
    assert.deepEqual(changes.at(-1), ["banner"]);
    assert.equal(client.status().version, 4);
    // Cut the stream: the client checks the config, then resumes after the last complete update.
    const before = mock.requests.length;
    mock.dropConnections();
    await waitFor(() => mock.requests.slice(before).some((r) => r.path === "/api/v1/sdk/stream"), 3000, "a reconnection");
    const again = mock.requests.slice(before);
    assert.equal(again.find((r) => r.path === "/api/v1/sdk/config")?.headers["if-none-match"], '"3"');
    assert.equal(again.find((r) => r.path === "/api/v1/sdk/stream")?.headers["last-event-id"], "3");
  } finally {
    await client.close();
    await mock.stop();
  }
  assert.equal(client.status().state, "STALE");
  assert.equal(client.status().reason, "client closed");
});

test("a rejected key: ready() fails at once and the status says ERROR", async () => {
  const mock = new MockServer((_req, res) => void res.writeHead(401).end());
  await mock.start();
  const client = new VexilClient({ url: mock.url, sdkKey: "vx_srv_wrong", ...fast, insights: false, logger: recordingLogger().logger });
  try {
    await assert.rejects(client.ready(5000), (e: unknown) => e instanceof VexilInitError && e.status.keyRejected && /rejected the key/.test(e.message));
    assert.equal(client.status().state, "ERROR");
    assert.equal(client.boolDetail("x", {}, true).reason.error_code, "CLIENT_NOT_READY");
  } finally {
    await client.close();
    await mock.stop();
  }
});

test("ready() times out with the reason when the server cannot be reached", async () => {
  const client = new VexilClient({ url: "http://127.0.0.1:9", sdkKey: "k", ...fast, insights: false, logger: recordingLogger().logger });
  await assert.rejects(client.ready(300), /not ready within 300 ms: server unreachable/);
  assert.equal(client.status().state, "ERROR");
  await client.close();
});

test("polling when streaming is off: conditional requests, changes picked up", async () => {
  let version = 1;
  const mock = new MockServer((req, res) => {
    if (req.path !== "/api/v1/sdk/config") return json(res, 404, {});
    if (req.headers["if-none-match"] === `"${version}"`) return void res.writeHead(304).end();
    json(res, 200, ruleset(version, version === 1), { ETag: `"${version}"` });
  });
  await mock.start();
  const client = new VexilClient({ url: mock.url, sdkKey: "k", streaming: false, pollIntervalMs: 30, insights: false });
  try {
    await client.ready(2000);
    assert.equal(client.status().reason, "polling");
    await delay(100);
    assert.ok(mock.requests.some((r) => r.headers["if-none-match"] === '"1"'), "If-None-Match sent");
    version = 2;
    await waitFor(() => !client.boolValue("new-checkout", staff, true), 2000, "the polled change");
    assert.equal(mock.count("/api/v1/sdk/stream"), 0);
  } finally {
    await client.close();
    await mock.stop();
  }
});

test("polling fallback when the stream keeps failing", async () => {
  const mock = new MockServer((req, res) => {
    if (req.path === "/api/v1/sdk/config") return json(res, 200, ruleset(1), { ETag: '"1"' });
    res.writeHead(502).end(); // a proxy that does not pass the stream
  });
  await mock.start();
  const { lines, logger } = recordingLogger();
  const client = new VexilClient({ url: mock.url, sdkKey: "k", ...fast, pollIntervalMs: 50, pollingFallback: { failures: 2 }, insights: false, logger });
  try {
    await waitFor(() => client.status().reason === "polling (streaming unavailable)", 3000, "the fallback");
    assert.equal(client.status().state, "READY");
    assert.equal(mock.count("/api/v1/sdk/stream"), 2);
    assert.ok(lines.some((l) => l.level === "warn" && /polling every 50 ms/.test(l.message)));
  } finally {
    await client.close();
    await mock.stop();
  }
});

test("the server going away: last values served, STALE, then READY again", async () => {
  let up = true;
  const mock = new MockServer((req, res) => {
    if (!up) return void res.destroy();
    if (req.path === "/api/v1/sdk/config") return json(res, 200, ruleset(1), { ETag: '"1"' });
    if (req.path === "/api/v1/sdk/stream") return void sse(res)("put", 1, ruleset(1));
    json(res, 404, {});
  });
  await mock.start();
  const states: string[] = [];
  const client = new VexilClient({ url: mock.url, sdkKey: "k", ...fast, insights: false, logger: recordingLogger().logger });
  client.on("status", (s) => states.push(s.state));
  try {
    await client.ready(2000);
    up = false;
    mock.dropConnections();
    await waitFor(() => client.status().state === "STALE", 3000, "STALE");
    assert.equal(client.boolValue("new-checkout", staff, false), true, "the last values are served");
    up = true;
    await waitFor(() => client.status().state === "READY", 3000, "READY again");
    assert.deepEqual([...new Set(states)], ["READY", "STALE"]);
  } finally {
    await client.close();
    await mock.stop();
  }
});

test("insights: counts and tracked events are posted; 404 is tolerated quietly; off means off", async () => {
  let metricsStatus = 404;
  const mock = new MockServer((req, res) => {
    if (req.path === "/api/v1/sdk/config") return json(res, 200, ruleset(1), { ETag: '"1"' });
    if (req.path === "/api/v1/sdk/stream") return void sse(res);
    if (req.path === "/api/v1/sdk/metrics" || req.path === "/api/v1/track") return void res.writeHead(metricsStatus).end();
    json(res, 404, {});
  });
  await mock.start();
  const { lines, logger } = recordingLogger();
  const client = new VexilClient({ url: mock.url, sdkKey: "k", ...fast, insights: { flushIntervalMs: 100_000 }, logger });
  const silent = new VexilClient({ url: mock.url, sdkKey: "k", ...fast, insights: false, logger });
  try {
    await client.ready(2000);
    await silent.ready(2000);
    client.boolValue("new-checkout", staff, false);
    client.boolValue("new-checkout", staff, false);
    client.boolValue("new-checkout", { targetingKey: "u2" }, false);
    client.boolDetail("banner", {}, false); // a type mismatch is not counted
    client.track("checkout_done", staff, 12.5);
    silent.boolValue("new-checkout", staff, false);
    silent.track("ignored", staff);
    await client.flush();
    await silent.flush();
    const metrics = mock.requests.filter((r) => r.path === "/api/v1/sdk/metrics");
    assert.equal(metrics.length, 1);
    const body = JSON.parse(metrics[0]!.body) as { start: string; end: string; flags: unknown };
    assert.deepEqual(body.flags, { "new-checkout": { on: 2, off: 1 } });
    assert.match(body.start, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const track = JSON.parse(mock.requests.find((r) => r.path === "/api/v1/track")!.body) as { events: Record<string, unknown>[] };
    assert.equal(track.events.length, 1);
    assert.deepEqual({ ...track.events[0], timestamp: undefined }, { key: "checkout_done", context: staff, value: 12.5, timestamp: undefined });
    assert.ok(!lines.some((l) => l.level === "warn" || l.level === "error"), `no warnings: ${JSON.stringify(lines)}`);
    assert.ok(lines.some((l) => l.level === "debug" && /no \/api\/v1\/sdk\/metrics yet/.test(l.message)));
    // A server error keeps the counts for the next window.
    metricsStatus = 503;
    client.boolValue("new-checkout", staff, false);
    await client.flush();
    metricsStatus = 204;
    await client.flush();
    const last = mock.requests.filter((r) => r.path === "/api/v1/sdk/metrics").at(-1)!;
    assert.deepEqual((JSON.parse(last.body) as { flags: unknown }).flags, { "new-checkout": { on: 1 } });
    assert.equal(mock.requests.filter((r) => r.headers.authorization === "Bearer k" && r.path === "/api/v1/track").length, 1);
  } finally {
    await client.close();
    await silent.close();
    await mock.stop();
  }
});
