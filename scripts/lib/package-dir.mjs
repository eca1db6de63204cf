// Where an installed npm package lives, seen from the package root `root` (shared by the build scripts).
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

/** The folder of package `name` (its "exports" may hide package.json from require.resolve), or null. */
export function packageDir(root, name) {
  const require = createRequire(path.join(root, "package.json"));
  try {
    let dir = path.dirname(require.resolve(name));
    while (dir !== path.dirname(dir)) {
      const pj = path.join(dir, "package.json");
      if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, "utf8")).name === name) return dir;
      dir = path.dirname(dir);
    }
  } catch {}
  const guess = path.join(root, "node_modules", ...name.split("/"));
  return fs.existsSync(path.join(guess, "package.json")) ? guess : null;
}
