#!/usr/bin/env bash
# Acceptance rate of every ordered pair of a model folder, by the project's own calibration (`hsd plan`), greedy
# and at temperature 1 (no truncation), on the built-in prompts and on held-out prompts; one JSON out.
#
#   scripts/models/measure-acceptance.sh <models-dir> <out.json>
#
# Used to compare a distilled family with the plain one (write_card.py prints both files if they exist).
# 1 ggml thread, flash attention off, a fresh calibration cache per run (so nothing stale is reused). Acceptance
# is deterministic for a given folder; the pass costs in the same output are not (they depend on the load).
# Needs `npx tsc -p .` to have compiled ts-lib/, and build/models/heldout-prompts.txt (heldout_prompts.py).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
DIR="${1:?usage: measure-acceptance.sh <models-dir> <out.json>}"
OUT="${2:?usage: measure-acceptance.sh <models-dir> <out.json>}"
PROMPTS="${PROMPTS:-build/models/heldout-prompts.txt}"
[ -f "$PROMPTS" ] || /usr/bin/python3 scripts/models/heldout_prompts.py --out "$PROMPTS"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
GREEDY=(--greedy)
T1=(--temperature 1 --top-k 0 --top-p 1 --min-p 0)
run() { # name, prompts-args..., sampling-args...
  local name=$1; shift
  HSD_CACHE_DIR="$TMP/cache-$name" npx --no-install hsd plan --models "$DIR" --threads 1 \
    --flash-attention off --json "$@" >"$TMP/$name.json"
}
run greedy_builtin "${GREEDY[@]}"
run t1_builtin "${T1[@]}"
run greedy_heldout --prompts "$PROMPTS" "${GREEDY[@]}"
run t1_heldout --prompts "$PROMPTS" "${T1[@]}"
/usr/bin/python3 - "$TMP" "$DIR" "$PROMPTS" "$OUT" <<'EOF'
import json, os, sys
tmp, d, prompts, out = sys.argv[1:]
res = {"models_dir": d, "heldout_prompts": prompts, "runs": {}}
for name in ("greedy_builtin", "t1_builtin", "greedy_heldout", "t1_heldout"):
    j = json.load(open(os.path.join(tmp, name + ".json")))
    res["files"] = [c["file"] for c in j["candidates"]]
    res["runs"][name] = j["acceptance"]
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
json.dump(res, open(out, "w"), indent=1)
print(f"measure-acceptance: {d} -> {out}")
EOF
