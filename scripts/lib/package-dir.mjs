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

// node-llama-cpp's CPU package for a platform (its prebuilt llama.cpp libraries). Only linux-x64 is tested here; the
// other names follow node-llama-cpp's package naming.
export function cpuPackageName(platform = process.platform, arch = process.arch) {
  if (platform === "linux" && ["x64", "arm64", "riscv64"].includes(arch)) return `linux-${arch}`;
  if (platform === "linux" && arch === "arm") return "linux-armv7l";
  if (platform === "darwin" && arch === "arm64") return "mac-arm64-metal";
  if (platform === "darwin" && arch === "x64") return "mac-x64";
  if (platform === "win32" && ["x64", "arm64"].includes(arch)) return `win-${arch}`;
  return null;
}

/** The library folder of the installed CPU package (bins/<name>), seen from `root`, or null. */
export function installedCpuLibDir(root) {
  const name = cpuPackageName();
  const dir = name && packageDir(root, `@node-llama-cpp/${name}`);
  const bins = dir && path.join(dir, "bins", name);
  return bins && fs.existsSync(bins) ? bins : null;
}
