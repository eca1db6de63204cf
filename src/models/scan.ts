// The drop-in folder: every GGUF file in it is read (metadata only), grouped by compatible
// vocabulary (src/gguf/vocabulary.ts: identical, or differing only by padding), and the target's
// group becomes the candidate set. Files that cannot take part are listed with the reason — never
// dropped silently, never a crash.

import { readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { readModelInfo, type ModelInfo } from "../gguf/model-info.js";
import { compareVocabularies } from "../gguf/vocabulary.js";
import { ModelFolderError } from "../errors.js";

export interface RejectedFile {
  path: string;
  reason: string;
  /** Refused because its vocabulary is not compatible with the target's (not for another reason). */
  vocabulary?: true;
}

export interface FolderScan {
  folder: string;
  target: ModelInfo;
  /** Compatible models, smallest first; the target is the last. */
  models: ModelInfo[];
  rejected: RejectedFile[];
}

export async function scanModelFolder(folder: string, options: { target?: string } = {}): Promise<FolderScan> {
  const dir = resolve(folder);
  let entries: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new ModelFolderError(`${folder}: not a folder`);
    entries = (await readdir(dir)).sort();
  } catch (error) {
    if (error instanceof ModelFolderError) throw error;
    throw new ModelFolderError(`${folder}: cannot read the models folder (${(error as NodeJS.ErrnoException).code ?? error})`);
  }
  const files = entries.filter((name) => name.toLowerCase().endsWith(".gguf")).map((name) => join(dir, name));
  const rejected: RejectedFile[] = entries
    .filter((name) => !name.toLowerCase().endsWith(".gguf") && !name.startsWith(".") && name.toLowerCase() !== "readme.md")
    .map((name) => ({ path: join(dir, name), reason: "not a .gguf file" }));

  const infos: ModelInfo[] = [];
  for (const path of files) {
    try {
      infos.push(await readModelInfo(path));
    } catch (error) {
      rejected.push({ path, reason: error instanceof Error ? error.message.replace(`${path}: `, "") : String(error) });
    }
  }
  if (infos.length === 0) {
    throw new ModelFolderError(`${folder}: no readable GGUF model in this folder${rejected.length ? ` (${rejected.map((r) => `${r.path}: ${r.reason}`).join("; ")})` : ""}`);
  }

  let target: ModelInfo | undefined;
  if (options.target) {
    const wanted = resolve(dir, options.target);
    target = infos.find((m) => m.path === wanted || m.file === options.target);
    if (!target) {
      const why = rejected.find((r) => r.path === wanted);
      throw new ModelFolderError(`--target ${options.target}: ${why ? why.reason : "no such GGUF model in " + folder}`);
    }
  } else {
    target = infos.reduce((a, b) => (b.parameterCount > a.parameterCount ? b : a));
  }
  const group = groupWithTarget(infos, target);
  return { folder: dir, target, models: group.models, rejected: [...rejected, ...group.rejected] };
}

/**
 * The models that can take part with `target`: a compatible vocabulary (compareVocabularies: identical, or
 * differing only by padding) and fewer parameters, sorted small to large, the target last; every other one with
 * the reason (a vocabulary refusal names the first differing id).
 */
export function groupWithTarget(infos: readonly ModelInfo[], target: ModelInfo): { models: ModelInfo[]; rejected: RejectedFile[] } {
  const rejected: RejectedFile[] = [];
  const models: ModelInfo[] = [];
  for (const info of infos) {
    const vocabulary = info === target ? null : compareVocabularies(info.vocabulary, target.vocabulary, target.file);
    if (vocabulary && !vocabulary.compatible) {
      rejected.push({ path: info.path, reason: vocabulary.reason, vocabulary: true });
    } else if (info !== target && info.parameterCount >= target.parameterCount) {
      rejected.push({ path: info.path, reason: `not smaller than the target ${target.file}, so it cannot draft for it` });
    } else {
      models.push(info);
    }
  }
  models.sort((a, b) => a.parameterCount - b.parameterCount);
  return { models, rejected };
}
