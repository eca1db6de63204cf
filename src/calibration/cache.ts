// Calibration results on disk, so that a second `hsd run` plans instantly. Entries are keyed by
// everything that changes the numbers: the model files (path, size, modification time), the
// backend and threads, the decoding settings and the prompts. Delete the folder, or pass
// --recalibrate, to measure again.

import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

export function defaultCacheDir(): string {
  if (process.env.HSD_CACHE_DIR) return process.env.HSD_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "hsd-llm");
}

export function cacheKey(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 24);
}

export class CalibrationCache {
  constructor(readonly dir: string = defaultCacheDir()) {}

  async get<T>(kind: string, key: string): Promise<T | null> {
    try {
      return JSON.parse(await readFile(this.path(kind, key), "utf8")) as T;
    } catch {
      return null; // missing or unreadable: measure again
    }
  }

  async put(kind: string, key: string, value: unknown): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    // Write then rename, so an interrupted run never leaves a half-written entry behind.
    const final = this.path(kind, key);
    const temp = `${final}.${process.pid}.tmp`;
    await writeFile(temp, JSON.stringify(value, null, 1));
    await rename(temp, final);
  }

  /** Forget an entry (a missing one is fine). */
  async delete(kind: string, key: string): Promise<void> {
    await rm(this.path(kind, key), { force: true });
  }

  private path(kind: string, key: string): string {
    return join(this.dir, `${kind}-${key}.json`);
  }
}
