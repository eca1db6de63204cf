// Default ggml thread count: physical cores. os.availableParallelism() counts logical CPUs (hyper-threads),
// and ggml decoding gets slower, not faster, when its threads share cores.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";

/** Physical cores from /proc/cpuinfo text: distinct (physical id, core id) pairs; 0 when it does not say. */
export function physicalCoresFromCpuinfo(text: string): number {
  const cores = new Set<string>();
  let physical = "0";
  for (const line of text.split("\n")) {
    const m = /^(physical id|core id)\s*:\s*(\S+)/.exec(line);
    if (!m) continue;
    if (m[1] === "physical id") physical = m[2]!;
    else cores.add(`${physical}:${m[2]}`);
  }
  return cores.size;
}

let cached: number | undefined;

export function defaultThreads(): number {
  if (cached !== undefined) return cached;
  const logical = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  let physical = 0;
  try {
    if (process.platform === "linux") physical = physicalCoresFromCpuinfo(fs.readFileSync("/proc/cpuinfo", "utf8"));
    else if (process.platform === "darwin") {
      // Apple Silicon: performance cores (efficiency cores slow a ggml thread pool down); Intel: all cores.
      for (const key of ["hw.perflevel0.physicalcpu", "hw.physicalcpu"]) {
        try {
          physical =
            Number(
              execFileSync("sysctl", ["-n", key], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(),
            ) || 0;
        } catch {
          physical = 0;
        }
        if (physical > 0) break;
      }
    }
  } catch {
    physical = 0;
  }
  // A container may be limited to fewer CPUs than the host has cores.
  cached = physical > 0 ? Math.min(physical, logical) : logical;
  return cached;
}
