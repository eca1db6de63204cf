#!/usr/bin/env node
// The `hsd` command. A committed file with its exec bit set in git, so that no build step (tsc writes
// ts-lib/cli/main.js without it) can leave npx, npm exec or a global install with a link to a file it may not run.
import { fileURLToPath } from "node:url";

const main = new URL("../ts-lib/cli/main.js", import.meta.url);
try {
  await import(main.href);
} catch (error) {
  if (error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes(fileURLToPath(main))) {
    process.stderr.write(
      `hsd: ${fileURLToPath(main)} is missing: run \`npm run build\` in ${fileURLToPath(new URL("..", import.meta.url))}\n`,
    );
    process.exit(1);
  }
  throw error;
}
