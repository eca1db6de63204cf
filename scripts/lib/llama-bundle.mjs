// Where the llama.cpp source (and so its headers) comes from, shared by build-addon.mjs and build-llama.mjs.
//
// node-llama-cpp ships llama/gitRelease.bundle: a git bundle of the exact llama.cpp commit its prebuilt libraries
// (the @node-llama-cpp/<platform> packages hsd-llm loads at run time) were built from. The addon must be compiled
// against the headers of that commit, so the bundle's version has to be the version of those packages, which
// package.json pins exactly (optionalDependencies). In a checkout node-llama-cpp is a devDependency; in a consumer's
// project it is not installed, so the bundle comes from `npm pack node-llama-cpp@<that version>` (the registry),
// once, kept under build/.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { packageDir } from "./package-dir.mjs";

/** The exact version of the @node-llama-cpp/* packages in root's package.json (they all share one). */
export function llamaPackagesVersion(root) {
  const pj = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  const versions = new Set(
    Object.entries(pj.optionalDependencies ?? {})
      .filter(([name]) => name.startsWith("@node-llama-cpp/"))
      .map(([, v]) => v),
  );
  if (versions.size !== 1 || !/^\d+\.\d+\.\d+$/.test([...versions][0]))
    throw new Error(
      `${path.join(root, "package.json")}: the @node-llama-cpp/* optionalDependencies must share one exact version`,
    );
  return [...versions][0];
}

function npmCommand() {
  // Under npm (npm run, npx, npm explore) npm_execpath is npm's own CLI script: no PATH or shell needed.
  const cli = process.env.npm_execpath;
  if (cli && /npm-cli\.js$/.test(cli) && fs.existsSync(cli)) return { cmd: process.execPath, pre: [cli], shell: false };
  return { cmd: "npm", pre: [], shell: process.platform === "win32" };
}

/**
 * The path of node-llama-cpp's gitRelease.bundle for the pinned version: the installed node-llama-cpp when its
 * version matches, else one fetched with npm pack into root/build/. `log(msg)`; throws an Error saying what to do.
 */
export function llamaBundle(root, log) {
  const version = llamaPackagesVersion(root);
  const installed = packageDir(root, "node-llama-cpp");
  if (installed) {
    const v = JSON.parse(fs.readFileSync(path.join(installed, "package.json"), "utf8")).version;
    const bundle = path.join(installed, "llama", "gitRelease.bundle");
    if (v === version && fs.existsSync(bundle)) return bundle;
    log(`node-llama-cpp ${v} is installed, but the llama.cpp libraries are ${version}: fetching ${version}'s source`);
  }
  const dest = path.join(root, "build", `node-llama-cpp-${version}`, "gitRelease.bundle");
  if (fs.existsSync(dest)) return dest;
  const tmp = path.join(root, "build", `node-llama-cpp-${version}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const npm = npmCommand();
  log(`fetching the llama.cpp source bundle: npm pack node-llama-cpp@${version}`);
  const r = spawnSync(npm.cmd, [...npm.pre, "pack", `node-llama-cpp@${version}`, "--json", "--pack-destination", tmp], {
    encoding: "utf8",
    shell: npm.shell,
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (r.error || r.status !== 0)
    throw new Error(
      `npm pack node-llama-cpp@${version} failed (${r.error?.message ?? `exit ${r.status}`}): the llama.cpp headers come ` +
        `from that package; install it (npm install --no-save node-llama-cpp@${version}) or pass --headers DIR`,
    );
  const tgz = path.join(tmp, JSON.parse(r.stdout)[0].filename);
  const x = spawnSync("tar", ["-xzf", tgz, "-C", tmp, "package/llama/gitRelease.bundle"], { stdio: "inherit" });
  if (x.error || x.status !== 0) throw new Error(`could not extract llama/gitRelease.bundle from ${tgz} with tar`);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.renameSync(path.join(tmp, "package", "llama", "gitRelease.bundle"), dest);
  fs.rmSync(tmp, { recursive: true, force: true });
  return dest;
}
