/**
 * The published shape: every entry point of package.json `exports` loads as an ES module
 * and as CommonJS, and nothing the browser entries load imports a Node.js module.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";

import { packageRoot } from "./paths.js";

const root = packageRoot();
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  exports: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
};

test("no runtime dependencies; the OpenFeature SDKs are optional peers", () => {
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.peerDependenciesMeta?.["@openfeature/server-sdk"]?.optional, true);
  assert.equal(pkg.peerDependenciesMeta?.["@openfeature/web-sdk"]?.optional, true);
});

test("every entry point loads with import and with require", async () => {
  const require = createRequire(join(root, "package.json"));
  const expected: Record<string, string> = {
    "@vexil/sdk": "VexilClient",
    "@vexil/sdk/browser": "VexilBrowserClient",
    "@vexil/sdk/openfeature/server": "VexilProvider",
    "@vexil/sdk/openfeature/web": "VexilWebProvider",
  };
  for (const [specifier, name] of Object.entries(expected)) {
    const esm = (await import(specifier)) as Record<string, unknown>;
    assert.equal(typeof esm[name], "function", `import ${specifier}`);
    const cjs = require(specifier) as Record<string, unknown>;
    assert.equal(typeof cjs[name], "function", `require ${specifier}`);
  }
});

/** Every module an ES module loads, transitively, by relative or bare specifier. */
function importGraph(file: string, seen = new Set<string>()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const text = readFileSync(file, "utf8");
  for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|import\s*["']([^"']+)["']/g)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (spec.startsWith(".")) importGraph(resolve(dirname(file), spec), seen);
    else seen.add(spec);
  }
  return seen;
}

test("the browser entry points load no Node.js module", () => {
  for (const entry of ["browser.js", "openfeature/web.js"]) {
    const graph = [...importGraph(join(root, "dist", "esm", entry))];
    const node = graph.filter((s) => s.startsWith("node:") || ["fs", "path", "http", "https", "events", "crypto"].includes(s));
    assert.deepEqual(node, [], `${entry} loads ${node.join(", ")}`);
    const bare = graph.filter((s) => !s.startsWith("/") && !s.startsWith("node:"));
    assert.deepEqual(bare, entry === "browser.js" ? [] : ["@openfeature/web-sdk"]);
  }
});
