#!/usr/bin/env bash
# Device call 2 of 2, on the machine device-build.sh left warm (its build/, node_modules/, ts-lib/ and the random
# GGUF family are still there): the synthetic-acceptance HSD benchmark with every layer on the GPU
# (scripts/gpu/bench-synthetic.ts), then the same engine in async evaluation mode for the autoregressive and
# planner runs. Always exits 0; results in $OUT:
#   bench-synthetic.json / .md   the main benchmark (copy the .md to docs/ to keep it)
#   bench-async.json / .md       async evaluation (NativeLevel "async"), autoregressive + planner pick only
#   bench-log.txt, bench-summary.txt
# Settings: HSD_BENCH_BUDGET_S (start no new configuration after this, default 200), HSD_BENCH_TIMEOUT_S (hard
# limit of the main benchmark, default 300), HSD_ASYNC_TIMEOUT_S (80), HSD_BENCH_ARGS (extra arguments, e.g. for
# the CPU rehearsal). Expected on an H100: 2-3 minutes in all.
set -uo pipefail
source "$(dirname "$0")/gpu-env.sh"
begin_log bench-log.txt
GGUF_DIR=$(gguf_dir)
echo "device-bench: backend $BACKEND, models $GGUF_DIR, OUT $OUT"

ready() {
  have_node || { echo "node missing: run scripts/gpu/device-build.sh first (same machine)"; return 1; }
  [ -f build/native-config.json ] && [ -f build/Release/hsd_native.node ] || { echo "addon not built: run device-build.sh first"; return 1; }
  [ -d node_modules/tsx ] || { echo "node_modules missing: run device-build.sh first"; return 1; }
  B="$BACKEND" node -e 'const c = require("./build/native-config.json"); console.log(JSON.stringify(c)); if (c.backend !== process.env.B) { console.error("backend " + c.backend + " != " + process.env.B); process.exit(1); }'
}

models() {
  # Normally written by call 1; rewritten here only when missing (about 20-40 s for the full family).
  local n
  n=$(ls "$GGUF_DIR"/*.gguf 2>/dev/null | wc -l)
  if [ "$n" -ge 2 ] && ! ls "$GGUF_DIR"/*.tmp >/dev/null 2>&1; then ls -la "$GGUF_DIR"; return 0; fi
  echo "GGUF family missing or incomplete in $GGUF_DIR: writing it now"
  # shellcheck disable=SC2086
  "$PY" scripts/gpu/make-random-gguf.py --out "$GGUF_DIR" ${HSD_GGUF_ARGS:-} && ls -la "$GGUF_DIR"
}

gpu_name() {
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true
}

bench_main() {
  # shellcheck disable=SC2086
  timeout -k 10 "${HSD_BENCH_TIMEOUT_S:-300}" node --import tsx scripts/gpu/bench-synthetic.ts --models "$GGUF_DIR" --out "$OUT" \
    --gpu-layers 999 --tokens 256 --repeats 3 --budget-s "${HSD_BENCH_BUDGET_S:-200}" --note "$(gpu_name)" ${HSD_BENCH_ARGS:-}
}

bench_async() {
  local tmp="$ROOT/build/gpu-bench-async"
  rm -rf "$tmp"
  # shellcheck disable=SC2086
  timeout -k 10 "${HSD_ASYNC_TIMEOUT_S:-80}" node --import tsx scripts/gpu/bench-synthetic.ts --models "$GGUF_DIR" --out "$tmp" \
    --gpu-layers 999 --tokens 256 --repeats 3 --budget-s 60 --evaluation async --only autoregressive,planner \
    --note "$(gpu_name); async evaluation" ${HSD_BENCH_ARGS:-} >/dev/null
  local rc=$?
  [ -f "$tmp/bench-synthetic.json" ] && cp "$tmp/bench-synthetic.json" "$OUT/bench-async.json"
  [ -f "$tmp/bench-synthetic.md" ] && cp "$tmp/bench-synthetic.md" "$OUT/bench-async.md" && sed -n '/^## Results/,$p' "$OUT/bench-async.md"
  return $rc
}

if step ready ready && step models models; then
  step bench-synthetic bench_main
  step bench-async bench_async
else
  skip bench-synthetic "no addon or no models"
fi
end_run bench-summary.txt
