// The npm package as a consumer gets it: `npm pack` (which runs `prepare`: tsc and the prebuilt addon), the tarball
// installed into an empty project with --ignore-scripts and no compiler on PATH, then the script API and
// `npx hsd run` on the bundled family. Also the CPU-only install the README documents, as `npm install hsd-llm`
// from a registry (test/helpers/one-package-registry.mjs serves the tarball) with --strict-allow-scripts, and the
// from-source build a consumer runs on a platform without a prebuilt addon (`npx hsd-build-addon`, with a compiler).
// Needs the npm registry (or npm's cache) for the dependencies. HSD_SKIP_INSTALL_TEST=1 skips it.
import { expect } from "chai";
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { packageRoot, prebuildDir } from "../src/native/index.js";

const PROMPT = "Once upon a time";
const TARGET = "hsd-tiny-5M.gguf";
const linuxX64 = process.platform === "linux" && process.arch === "x64";
const COMPILERS = ["cc", "c++", "gcc", "g++", "clang", "clang++", "make", "cmake", "ninja", "python", "python3"];

// The script a consumer writes: 8 greedy tokens with the hierarchy pinned to the target (no calibration). The
// argument, when given, is the module to import instead of "hsd-llm" (the checkout's ts-lib, for the reference).
const API_SCRIPT = `
const t0 = performance.now();
const { Hsd } = await import(process.argv[2] ?? "hsd-llm");
const hsd = await Hsd.open({ threads: 1 });
const openMs = performance.now() - t0;
const run = hsd.generate(${JSON.stringify(PROMPT)}, {
  maxTokens: 8,
  sampling: { greedy: true },
  hierarchy: { files: [${JSON.stringify(TARGET)}], thresholds: [] },
});
const result = await run.result;
await hsd.dispose();
console.log(JSON.stringify({ text: result.text, tokens: result.tokens.length, openMs }));
`;

/** The environment of a user's shell: no npm_* variables from the `npm test` that runs this. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function which(cmd: string): string | null {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** A PATH of one folder: node, npm, npx and sh, nothing else (no compiler, no make, no python). */
function minimalPath(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const links: Record<string, string | null> = {
    node: process.execPath,
    npm: which("npm"),
    npx: which("npx"),
    sh: "/bin/sh",
  };
  for (const [name, target] of Object.entries(links)) {
    if (!target) throw new Error(`${name} not found on PATH`);
    fs.symlinkSync(target, path.join(dir, name));
  }
  return dir;
}

function run(cmd: string, args: string[], options: SpawnSyncOptions & { env: NodeJS.ProcessEnv }) {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 600_000, ...options });
  const out = { code: r.status, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? ""), ms: Date.now() - t0 };
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  return out;
}

function duMiB(dir: string): number {
  const r = spawnSync("du", ["-sm", dir], { encoding: "utf8" });
  return Number(r.stdout.split(/\s/)[0]);
}

describe("npm package: the packed tarball installed into an empty project", function () {
  this.timeout(900_000);
  if (process.env.HSD_SKIP_INSTALL_TEST === "1") return;
  let work: string;
  let tarball: string;
  let bareEnv: NodeJS.ProcessEnv;
  let expected: { text: string; tokens: number; openMs: number };

  function newProject(name: string): string {
    const dir = path.join(work, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(
      path.join(dir, "package.json"),
      JSON.stringify({ name, version: "1.0.0", private: true, type: "module" }, null, 2),
    );
    fs.writeFileSync(path.join(dir, "api.mjs"), API_SCRIPT);
    return dir;
  }

  function npmInstall(project: string, args: string[]) {
    const r = run("npm", ["install", ...args, "--no-audit", "--no-fund", "--prefer-offline"], {
      cwd: project,
      env: bareEnv,
    });
    expect(r.code, r.stderr).to.equal(0);
    // No package in the installed tree has an install script: nothing was skipped by --ignore-scripts.
    const lock = JSON.parse(fs.readFileSync(path.join(project, "package-lock.json"), "utf8"));
    const withScripts = Object.entries(lock.packages as Record<string, { hasInstallScript?: boolean }>)
      .filter(([, p]) => p.hasInstallScript)
      .map(([k]) => k);
    expect(withScripts, "packages with install scripts").to.deep.equal([]);
    return r;
  }

  function runApi(project: string) {
    const r = run(process.execPath, ["api.mjs"], { cwd: project, env: bareEnv });
    expect(r.code, r.stderr).to.equal(0);
    return JSON.parse(r.stdout) as { text: string; tokens: number; openMs: number };
  }

  before(function () {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "hsd-install-"));
    const pathDir = minimalPath(path.join(work, "path"));
    bareEnv = cleanEnv({ PATH: pathDir, HSD_CACHE_DIR: path.join(work, "cache") });
    delete bareEnv.HSD_BACKEND;
    for (const c of COMPILERS)
      expect(spawnSync("sh", ["-c", `command -v ${c}`], { env: bareEnv }).status, `${c} hidden`).to.not.equal(0);

    // What the checkout's own build generates (the reference for the installed package's output).
    fs.writeFileSync(path.join(work, "api.mjs"), API_SCRIPT);
    const ref = run(process.execPath, [path.join(work, "api.mjs"), path.join(packageRoot, "ts-lib", "index.js")], {
      cwd: work,
      env: cleanEnv({ HSD_CACHE_DIR: path.join(work, "cache") }),
    });
    expect(ref.code, ref.stderr).to.equal(0);
    expected = JSON.parse(ref.stdout);

    const pack = run("npm", ["pack", "--json", "--pack-destination", work], {
      cwd: packageRoot,
      env: cleanEnv({}),
    });
    expect(pack.code, pack.stderr).to.equal(0);
    // npm prints the `prepare` script's output first, then the JSON array (from a line holding only "[").
    const info = JSON.parse(pack.stdout.slice(pack.stdout.lastIndexOf("\n[\n") + 1))[0];
    tarball = path.join(work, info.filename);
    const files = new Map<string, number>(info.files.map((f: { path: string; mode: number }) => [f.path, f.mode]));
    console.log(`      npm pack: ${(pack.ms / 1000).toFixed(1)} s, ${(info.size / 2 ** 20).toFixed(1)} MiB packed`);
    expect(files.get("bin/hsd.js")! & 0o111, "bin/hsd.js executable").to.not.equal(0);
    if (linuxX64) expect(files.has("prebuilds/linux-x64/hsd_native.node")).to.equal(true);
    const pj = JSON.parse(fs.readFileSync(path.join(packageRoot, "package.json"), "utf8"));
    for (const s of ["preinstall", "install", "postinstall"]) expect(pj.scripts).to.not.have.property(s);
    expect(pj.gypfile, "gypfile: false (else npm adds `node-gyp rebuild` as an install script)").to.equal(false);
  });

  after(function () {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  describe("the default install (npm install <tarball> --ignore-scripts)", function () {
    let project: string;
    before(function () {
      if (!fs.existsSync(path.join(prebuildDir, "hsd_native.node"))) this.skip();
      project = newProject("default");
      const r = npmInstall(project, [tarball, "--ignore-scripts"]);
      console.log(
        `      npm install: ${(r.ms / 1000).toFixed(1)} s, node_modules ${duMiB(path.join(project, "node_modules"))} MiB`,
      );
    });

    it("generates through the script API, the checkout's text, with nothing built on first use", function () {
      const got = runApi(project);
      console.log(`      Hsd.open ${got.openMs.toFixed(0)} ms here, ${expected.openMs.toFixed(0)} ms in the checkout`);
      expect(got.tokens).to.equal(8);
      expect(got.text).to.equal(expected.text);
      expect(fs.existsSync(path.join(project, "node_modules", "hsd-llm", "build")), "a build/ folder").to.equal(false);
    });

    it("npx hsd run prints text", function () {
      // --thresholds "": the one-model chain as it is (without it, `hsd run` calibrates first to predict its speed).
      const args = ["run", "--max-tokens", "8", "--greedy", "--hierarchy", TARGET, "--thresholds", "", PROMPT];
      const r = run("npx", ["hsd", ...args], {
        cwd: project,
        env: bareEnv,
      });
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout.trimEnd()).to.equal(expected.text.trimEnd());
    });
  });

  describe("the CPU-only install from a registry (--omit=optional plus the CPU package, --strict-allow-scripts)", function () {
    let project: string;
    let registry: ChildProcess | undefined;
    before(async function () {
      if (!linuxX64 || !fs.existsSync(path.join(prebuildDir, "hsd_native.node"))) this.skip();
      registry = spawn(
        process.execPath,
        [path.join(packageRoot, "test", "helpers", "one-package-registry.mjs"), tarball],
        {
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      const url = await new Promise<string>((resolve, reject) => {
        registry!.stdout!.once("data", (d: Buffer) => resolve(d.toString().trim()));
        registry!.once("exit", (code) => reject(new Error(`the test registry exited with ${code}`)));
      });
      project = newProject("cpu-only");
      // Without --ignore-scripts: --strict-allow-scripts fails the install if any package has an install script.
      const r = npmInstall(project, [
        "hsd-llm",
        "@node-llama-cpp/linux-x64@3.21.1",
        "--omit=optional",
        "--strict-allow-scripts",
        `--registry=${url}`,
      ]);
      console.log(
        `      npm install: ${(r.ms / 1000).toFixed(1)} s, node_modules ${duMiB(path.join(project, "node_modules"))} MiB`,
      );
    });

    after(() => registry?.kill());

    it("has only the CPU libraries, and generates", function () {
      expect(fs.readdirSync(path.join(project, "node_modules", "@node-llama-cpp"))).to.deep.equal(["linux-x64"]);
      expect(runApi(project).text).to.equal(expected.text);
    });

    it("without a prebuilt addon, names the command; `npx hsd-build-addon` (with a compiler) builds one", function () {
      if (!which("c++") || !which("git")) this.skip();
      const installed = path.join(project, "node_modules", "hsd-llm");
      fs.rmSync(path.join(installed, "prebuilds"), { recursive: true });
      const failed = run(process.execPath, ["api.mjs"], { cwd: project, env: bareEnv });
      expect(failed.code).to.not.equal(0);
      expect(failed.stderr).to.include("npx hsd-build-addon");
      const build = run("npx", ["hsd-build-addon", "--quiet"], { cwd: project, env: cleanEnv({}) });
      expect(build.code, build.stderr).to.equal(0);
      console.log(`      npx hsd-build-addon: ${(build.ms / 1000).toFixed(1)} s`);
      expect(
        fs.existsSync(path.join(installed, "prebuilds", `${process.platform}-${process.arch}`, "hsd_native.node")),
      );
      expect(runApi(project).text).to.equal(expected.text);
    });
  });
});
