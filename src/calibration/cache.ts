// Calibration results on disk, so that a second `hsd run` plans instantly. Entries are keyed by
// everything that changes the numbers: the model files (path, size, modification time), the
// backend and threads, the decoding settings and the prompts. Delete the folder, or pass
// --recalibrate, to measure again.
//
// The cache is a convenience, never a reason to fail: an entry that cannot be read or is not what this version
// wrote (edited by hand, truncated, from another version) is reported as a warning naming the file and measured
// again; a cache folder that cannot be written is reported and the run goes on with the numbers it just measured.

import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { PassCosts, PassCostSample } from "../planner/costs.js";
import type { AcceptanceMeasurement, StateProfile, Workload } from "./measure.js";

export function defaultCacheDir(): string {
  if (process.env.HSD_CACHE_DIR) return process.env.HSD_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "hsd-llm");
}

export function cacheKey(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 24);
}

/** Whether a parsed entry has the shape its reader expects. */
export type EntryCheck<T> = (value: unknown) => value is T;

export class CalibrationCache {
  /** One warning per cache for a location that cannot be written (each entry would fail alike). */
  private writeFailed = false;

  constructor(
    readonly dir: string = defaultCacheDir(),
    private readonly onWarning: (message: string) => void = (m) => process.emitWarning(m, "HsdWarning"),
  ) {}

  /** The entry, or null when there is none or it cannot be used (a warning says which file and why). */
  async get<T>(kind: string, key: string, check: EntryCheck<T>): Promise<T | null> {
    const path = this.path(kind, key);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // No entry yet (ENOTDIR: the location is not a folder, which put() reports).
      if (code !== "ENOENT" && code !== "ENOTDIR")
        this.onWarning(`calibration cache ${path}: cannot read it (${code ?? error}); measuring again`);
      return null;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (value === undefined || !check(value)) {
      this.onWarning(
        `calibration cache ${path}: not a valid ${kind} entry (corrupt, edited or from another version); measuring again (--recalibrate does this too, and deleting the file removes it)`,
      );
      return null;
    }
    return value;
  }

  /** Stores an entry; a failure is a warning (the run keeps its numbers, the next run measures again). */
  async put(kind: string, key: string, value: unknown): Promise<void> {
    // Write then rename, so an interrupted run never leaves a half-written entry behind.
    const final = this.path(kind, key);
    const temp = `${final}.${process.pid}.tmp`;
    try {
      await mkdir(this.dir, { recursive: true });
      await writeFile(temp, JSON.stringify(value, null, 1));
      await rename(temp, final);
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined);
      if (this.writeFailed) return;
      this.writeFailed = true;
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      this.onWarning(
        `calibration cache ${this.dir}: cannot write there (${code}); this run uses what it measured, but the next one will measure again: set HSD_CACHE_DIR to a writable folder`,
      );
    }
  }

  /** Forget an entry (a missing one is fine). */
  async delete(kind: string, key: string): Promise<void> {
    await rm(this.path(kind, key), { force: true });
  }

  private path(kind: string, key: string): string {
    return join(this.dir, `${kind}-${key}.json`);
  }
}

const isFiniteAtLeast = (v: unknown, min: number): v is number =>
  typeof v === "number" && Number.isFinite(v) && v >= min;

function isCurve(v: unknown): v is PassCostSample[] {
  return (
    Array.isArray(v) &&
    v.length > 0 &&
    v.every((s) => typeof s === "object" && s !== null && isFiniteAtLeast(s.n, 1) && isFiniteAtLeast(s.ms, 0))
  );
}

/** A costs entry for `models` models: one PassCosts each, every curve non-empty and finite. */
export function isPassCostsList(models: number): EntryCheck<PassCosts[]> {
  return (v: unknown): v is PassCosts[] =>
    Array.isArray(v) &&
    v.length === models &&
    v.every(
      (c) =>
        typeof c === "object" &&
        c !== null &&
        isCurve(c.hot) &&
        isCurve(c.cold) &&
        Array.isArray(c.reshape) &&
        (c.reshape.length === 0 || isCurve(c.reshape)) &&
        isFiniteAtLeast(c.autoregressiveMs, 0),
    );
}

/** An acceptance entry for `models` models: a square matrix of rates in [0, 1]. */
export function isAcceptanceMatrix(models: number): EntryCheck<number[][]> {
  return (v: unknown): v is number[][] =>
    Array.isArray(v) &&
    v.length === models &&
    v.every(
      (row) => Array.isArray(row) && row.length === models && row.every((a) => isFiniteAtLeast(a, 0) && a <= 1 + 1e-6),
    );
}

const isRateList = (v: unknown): v is number[] =>
  Array.isArray(v) && v.every((a) => isFiniteAtLeast(a, 0) && a <= 1 + 1e-6);

function isStateProfile(v: unknown, candidates: number): v is StateProfile {
  if (typeof v !== "object" || v === null) return false;
  const s = v as Partial<StateProfile>;
  return (
    typeof s.name === "string" &&
    isFiniteAtLeast(s.positions, 0) &&
    Array.isArray(s.available) &&
    s.available.every(isRateList) &&
    Array.isArray(s.acceptance) &&
    s.acceptance.length === candidates &&
    s.acceptance.every(
      (row) => Array.isArray(row) && row.length === candidates && row.every((r) => r === null || isRateList(r)),
    )
  );
}

/** An acceptance entry for `models` models: the matrix, and the lookup's per-state workload or null. */
export function isAcceptanceMeasurement(models: number): EntryCheck<AcceptanceMeasurement> {
  const isMatrix = isAcceptanceMatrix(models);
  return (v: unknown): v is AcceptanceMeasurement => {
    if (typeof v !== "object" || v === null) return false;
    const m = v as Partial<AcceptanceMeasurement>;
    if (!isMatrix(m.acceptance)) return false;
    if (m.workload === null) return true;
    const w = m.workload as Partial<Workload> | undefined;
    if (typeof w !== "object" || !Array.isArray(w.proposals) || !Array.isArray(w.states) || !Array.isArray(w.paths))
      return false;
    const candidates = w.proposals.length + models;
    return (
      w.proposals.every((p) => typeof p?.name === "string" && isFiniteAtLeast(p.costMs, 0)) &&
      w.states.length > 0 &&
      w.states.every((s) => isStateProfile(s, candidates)) &&
      isStateProfile(w.overall, candidates) &&
      w.paths.every(
        (path) => Array.isArray(path) && path.every((s) => Number.isInteger(s) && s >= 0 && s < w.states!.length),
      )
    );
  };
}
