/** Where things are, seen from the compiled tests in `build/test/`. */

import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The package's root directory (the one with its package.json). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "@vexil/sdk") {
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find the @vexil/sdk package root");
    dir = up;
  }
}

/** The repository's shared evaluation vectors (`spec/vectors/`), or `VEXIL_VECTORS_DIR`. */
export function vectorsDir(): string {
  return process.env.VEXIL_VECTORS_DIR ?? resolve(packageRoot(), "..", "..", "spec", "vectors");
}
