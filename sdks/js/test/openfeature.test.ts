/** Both OpenFeature providers through the real OpenFeature SDKs. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { OpenFeature as ServerOpenFeature, ProviderEvents as ServerEvents } from "@openfeature/server-sdk";
import { OpenFeature as WebOpenFeature, ProviderEvents as WebEvents } from "@openfeature/web-sdk";

import type { Ruleset } from "../src/index.js";
import { VexilProvider } from "../src/openfeature/server.js";
import { VexilWebProvider } from "../src/openfeature/web.js";
import { boolFlag, json, MockServer, recordingLogger, sse } from "./mock.js";
import { waitFor } from "./server.js";

const ruleset = (version: number, enabled: boolean) =>
  ({
    version,
    flags: {
      checkout: boolFlag({
        enabled,
        version,
        fallthrough: { variation: "off" },
        rules: [{ id: "staff", clauses: [{ attribute: "email", op: "ends_with", values: ["@acme.com"] }], serve: { variation: "on" } }],
      }),
      theme: { type: "json", variations: [{ key: "dark", value: { bg: "#000" } }], enabled: true, off_variation: "dark", fallthrough: { variation: "dark" } },
    },
  }) as unknown as Ruleset;

test("server provider: evaluation details, events, track", async () => {
  let version = 1;
  let push: ((v: number) => void) | undefined;
  let up = true;
  const mock = new MockServer((req, res) => {
    if (!up) return void res.destroy();
    if (req.path === "/api/v1/sdk/config") return json(res, 200, ruleset(version, version === 1), { ETag: `"${version}"` });
    if (req.path === "/api/v1/sdk/stream") {
      const send = sse(res);
      push = (v) => send("patch", v, { kind: "flag", key: "checkout", version: v, value: (ruleset(v, false).flags as Record<string, unknown>).checkout });
      return;
    }
    res.writeHead(404).end();
  });
  await mock.start();
  const provider = new VexilProvider(
    { url: mock.url, sdkKey: "vx_srv_t", initialBackoffMs: 20, maxBackoffMs: 100, insights: { flushIntervalMs: 100_000 }, logger: recordingLogger().logger },
    { readyTimeoutMs: 3000 },
  );
  const seen: string[] = [];
  const changed: string[][] = [];
  for (const ev of [ServerEvents.Ready, ServerEvents.Stale, ServerEvents.Error]) ServerOpenFeature.addHandler(ev, () => seen.push(ev));
  ServerOpenFeature.addHandler(ServerEvents.ConfigurationChanged, (d) => changed.push((d?.flagsChanged as string[] | undefined) ?? []));
  try {
    await ServerOpenFeature.setProviderAndWait(provider);
    const client = ServerOpenFeature.getClient();
    const staff = { targetingKey: "u1", email: "ann@acme.com" };
    const d = await client.getBooleanDetails("checkout", false, staff);
    assert.equal(d.value, true);
    assert.equal(d.variant, "on");
    assert.equal(d.reason, "TARGETING_MATCH");
    assert.deepEqual(d.flagMetadata, { flagVersion: 1, ruleId: "staff", ruleIndex: 0 });
    assert.equal((await client.getBooleanDetails("checkout", true, { targetingKey: "u2" })).reason, "DEFAULT");
    assert.deepEqual(await client.getObjectValue("theme", {}, {}), { bg: "#000" });
    const missing = await client.getBooleanDetails("nope", true, {});
    assert.equal(missing.value, true);
    assert.equal(missing.errorCode, "FLAG_NOT_FOUND");
    assert.equal((await client.getStringDetails("checkout", "x", {})).errorCode, "TYPE_MISMATCH");
    client.track("purchase", staff, { value: 9.99 });
    await provider.client.flush();
    const track = mock.requests.find((r) => r.path === "/api/v1/track");
    assert.deepEqual((JSON.parse(track!.body) as { events: { key: string; value: number }[] }).events.map((e) => [e.key, e.value]), [["purchase", 9.99]]);
    const metrics = mock.requests.find((r) => r.path === "/api/v1/sdk/metrics");
    assert.deepEqual((JSON.parse(metrics!.body) as { flags: unknown }).flags, { checkout: { on: 1, off: 1 }, theme: { dark: 1 } });

    await waitFor(() => push !== undefined, 2000, "the stream");
    version = 2;
    push!(2);
    await waitFor(() => changed.some((c) => c.includes("checkout")), 2000, "CONFIGURATION_CHANGED");
    assert.equal(await client.getBooleanValue("checkout", true, staff), false);

    up = false;
    mock.dropConnections();
    await waitFor(() => seen.includes(ServerEvents.Stale), 3000, "PROVIDER_STALE");
    up = true;
    await waitFor(() => seen.filter((e) => e === ServerEvents.Ready).length >= 2, 3000, "PROVIDER_READY again");
  } finally {
    await ServerOpenFeature.close();
    await mock.stop();
  }
});

test("server provider: initialize fails (ERROR) when the key is rejected", async () => {
  const mock = new MockServer((_req, res) => void res.writeHead(403).end());
  await mock.start();
  const provider = new VexilProvider({ url: mock.url, sdkKey: "bad", insights: false, logger: recordingLogger().logger });
  try {
    await assert.rejects(ServerOpenFeature.setProviderAndWait("rejected", provider));
    const details = await ServerOpenFeature.getClient("rejected").getBooleanDetails("x", true, {});
    assert.equal(details.value, true);
    assert.equal(details.reason, "ERROR");
  } finally {
    await ServerOpenFeature.close();
    await mock.stop();
  }
});

test("web provider: context from OpenFeature, reconciliation, events, track", async () => {
  let version = 1;
  let push: ((v: number) => void) | undefined;
  const mock = new MockServer((req, res) => {
    if (req.path === "/ofrep/v1/evaluate/flags") {
      const ctx = (JSON.parse(req.body) as { context: { plan?: string } }).context;
      return json(res, 200, {
        flags: [
          { key: "banner", value: ctx.plan === "pro" ? "Pro" : "Free", reason: "TARGETING_MATCH", variant: ctx.plan ?? "none", metadata: { flagVersion: version } },
          { key: "dark", value: version > 1, reason: "STATIC", variant: String(version > 1), metadata: { flagVersion: version } },
        ],
        metadata: { environmentVersion: version },
      });
    }
    if (req.path === "/api/v1/sdk/stream") {
      const send = sse(res);
      push = (v) => send("refetch", v, { version: v });
      return;
    }
    res.writeHead(404).end();
  });
  await mock.start();
  const provider = new VexilWebProvider({ url: mock.url, clientKey: "vx_cli_t", cache: false, initialBackoffMs: 20, maxBackoffMs: 100, logger: recordingLogger().logger });
  const changed: string[][] = [];
  WebOpenFeature.addHandler(WebEvents.ConfigurationChanged, (d) => changed.push((d?.flagsChanged as string[] | undefined) ?? []));
  try {
    await WebOpenFeature.setContext({ targetingKey: "u1", plan: "free" });
    await WebOpenFeature.setProviderAndWait(provider);
    const client = WebOpenFeature.getClient();
    const d = client.getStringDetails("banner", "x");
    assert.deepEqual([d.value, d.variant, d.reason, d.flagMetadata.flagVersion], ["Free", "free", "TARGETING_MATCH", 1]);
    assert.equal(client.getBooleanDetails("missing", true).errorCode, "FLAG_NOT_FOUND");
    await WebOpenFeature.setContext({ targetingKey: "u1", plan: "pro" });
    assert.equal(client.getStringValue("banner", "x"), "Pro");
    await waitFor(() => push !== undefined, 2000, "the stream");
    version = 2;
    push!(2);
    await waitFor(() => changed.some((c) => c.includes("dark")), 2000, "CONFIGURATION_CHANGED");
    assert.equal(client.getBooleanValue("dark", false), true);
    client.track("clicked", { value: 1 });
    await provider.client.flush();
    const track = mock.requests.find((r) => r.path === "/api/v1/track");
    assert.equal((JSON.parse(track!.body) as { events: { key: string; context: unknown }[] }).events[0]!.key, "clicked");
  } finally {
    await WebOpenFeature.close();
    await mock.stop();
  }
});
