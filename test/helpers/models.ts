// Where the tests find GGUF models: the bundled family (models/tiny).
import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

export const BUNDLED_DIR = fileURLToPath(new URL("../../models/tiny", import.meta.url));

export function bundledFamily() {
  const files = existsSync(BUNDLED_DIR)
    ? readdirSync(BUNDLED_DIR)
        .filter((f) => f.endsWith(".gguf"))
        .sort()
    : [];
  if (files.length === 0)
    throw new Error(`no bundled models in ${BUNDLED_DIR}: build them with scripts/models/build-family.sh`);
  return { dir: BUNDLED_DIR, files: files.map((f) => join(BUNDLED_DIR, f)), minModels: 4 };
}
