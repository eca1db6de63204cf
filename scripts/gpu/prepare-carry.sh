#!/usr/bin/env bash
# Runs HERE (the dev machine), before the GPU run: packs into .device-carry/ (git-ignored) what the device machine
# lacks, so that one carried path is enough:
#
#   node.xz              this machine's node binary (the device has no Node.js; it runs there: glibc >= 2.28)
#   node-headers.tar.xz  /usr/include/node (N-API headers, to compile the addon there; no downloads there)
#   llama-src.tar.xz     the llama.cpp source of node-llama-cpp's bundle, cut to what a CUDA/CPU library build
#                        needs (CMake files, include/, src/, ggml/ with the CPU and CUDA backends only, vendor/
#                        CMake stubs, gguf-py/ for make-random-gguf.py) + LLAMA_COMMIT
#   node-modules.tar.xz  the node_modules the device scripts load: mocha + chai + tsx (to run the TypeScript
#                        tests and scripts as they run here) and node-addon-api (headers for the addon)
#   ts-lib.tar.xz        the compiled library (npx tsc -p .), JavaScript only
#   MANIFEST.txt         sizes and sha256 of the above, and the size check against the 64 MiB transfer limit
#
# Usage: bash scripts/gpu/prepare-carry.sh        (about 2 minutes on 2 cores, mostly xz of node)
# Env:   HSD_CARRY_DIR (default .device-carry), LLAMA_SRC (default: build/llama.cpp-src, else build/llama.cpp),
#        XZ_THREADS (default 2), FORCE_NODE=1 to re-pack node.xz even when it is up to date.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
CARRY="${HSD_CARRY_DIR:-$ROOT/.device-carry}"
XZT="${XZ_THREADS:-2}"
LIMIT=$((64 * 1024 * 1024))
say() { echo "[prepare-carry $(date -u +%H:%M:%S)] $*"; }
die() { echo "[prepare-carry] error: $*" >&2; exit 1; }
mkdir -p "$CARRY"
T0=$(date +%s)

# --- 0. the compiled library (the device scripts run the TypeScript sources through tsx; ts-lib is carried for
# the CLI and anything else that imports the package) ----------------------------------------------------------
say "npx tsc -p ."
TSC_OK=1
npx tsc -p . || { TSC_OK=0; say "WARNING: tsc failed: ts-lib is not carried (the device scripts do not need it)"; }

# --- 1. node --------------------------------------------------------------------------------------------------
NODE_BIN="$(readlink -f "$(command -v node)")"
[ -x "$NODE_BIN" ] || die "node not found on PATH"
NODE_VER="$("$NODE_BIN" --version)"
if [ "${FORCE_NODE:-0}" = 1 ] || [ ! -s "$CARRY/node.xz" ] || [ "$(cat "$CARRY/node.version" 2>/dev/null)" != "$NODE_VER $(stat -c %s "$NODE_BIN")" ]; then
  say "xz -T$XZT -9 $NODE_BIN ($NODE_VER)"
  xz -T"$XZT" -9 -c "$NODE_BIN" >"$CARRY/node.xz.tmp" && mv "$CARRY/node.xz.tmp" "$CARRY/node.xz" || die "xz of node failed"
  echo "$NODE_VER $(stat -c %s "$NODE_BIN")" >"$CARRY/node.version"
else
  say "node.xz is up to date ($NODE_VER)"
fi

# --- 2. node headers ------------------------------------------------------------------------------------------
NODE_INC="$(dirname "$(dirname "$NODE_BIN")")/include/node"
[ -f "$NODE_INC/node_api.h" ] || NODE_INC=/usr/include/node
[ -f "$NODE_INC/node_api.h" ] || die "no Node headers (node_api.h) next to $NODE_BIN or in /usr/include/node"
say "node headers from $NODE_INC"
tar -C "$(dirname "$NODE_INC")" -cf - node | xz -T"$XZT" -6 >"$CARRY/node-headers.tar.xz" || die "tar of node headers failed"

# --- 3. llama.cpp source, cut down ---------------------------------------------------------------------------
SRC="${LLAMA_SRC:-}"
if [ -z "$SRC" ]; then
  for c in build/llama.cpp-src build/llama.cpp; do
    if [ -f "$c/CMakeLists.txt" ] && [ -f "$c/ggml/src/ggml-cuda/CMakeLists.txt" ]; then SRC="$c"; break; fi
  done
fi
[ -n "$SRC" ] && [ -f "$SRC/CMakeLists.txt" ] || die "no llama.cpp source (build/llama.cpp-src or build/llama.cpp); set LLAMA_SRC"
COMMIT="$(git -C "$SRC" rev-parse HEAD 2>/dev/null || true)"
HEADERS_COMMIT="$(cat build/llama-headers/commit.txt 2>/dev/null || true)"
if [ -n "$COMMIT" ] && [ -n "$HEADERS_COMMIT" ] && [ "$COMMIT" != "$HEADERS_COMMIT" ]; then
  die "$SRC is llama.cpp $COMMIT but build/llama-headers is $HEADERS_COMMIT: they must be the same release"
fi
COMMIT="${COMMIT:-$HEADERS_COMMIT}"
say "llama.cpp source $SRC (${COMMIT:-commit unknown})"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
L="$STAGE/llama.cpp"
mkdir -p "$L/ggml/src" "$L/vendor"
cp -a "$SRC/CMakeLists.txt" "$SRC/LICENSE" "$SRC/cmake" "$SRC/include" "$SRC/src" "$SRC/gguf-py" "$L/"
[ -d "$SRC/licenses" ] && cp -a "$SRC/licenses" "$L/"
cp -a "$SRC/ggml/CMakeLists.txt" "$SRC/ggml/cmake" "$SRC/ggml/include" "$L/ggml/"
# ggml/src: its own files plus the CPU and CUDA backends; the other backends are added only when their
# GGML_<NAME> option is ON (ggml_add_backend), so their folders can go.
for f in "$SRC"/ggml/src/*; do
  case "$(basename "$f")" in
    ggml-*) [ -d "$f" ] && continue ;;
  esac
  cp -a "$f" "$L/ggml/src/"
done
cp -a "$SRC/ggml/src/ggml-cpu" "$SRC/ggml/src/ggml-cuda" "$L/ggml/src/"
# vendor/: CMakeLists adds every subfolder; only hash is compiled (header-only ones need just their CMakeLists).
cp -a "$SRC/vendor/CMakeLists.txt" "$L/vendor/"
for d in "$SRC"/vendor/*/; do
  n="$(basename "$d")"
  if [ "$n" = hash ]; then cp -a "$d" "$L/vendor/hash"
  else mkdir -p "$L/vendor/$n" && cp -a "$d/CMakeLists.txt" "$L/vendor/$n/" 2>/dev/null || true
  fi
done
rm -rf "$L/gguf-py/tests" "$L/gguf-py/examples"
find "$L" -name '__pycache__' -prune -exec rm -rf {} +
echo "$COMMIT" >"$L/LLAMA_COMMIT"
# Deterministic archive (names sorted, fixed times and owners): the same source gives the same file, so the device
# (and rehearse.sh) keep an unpacked tree and its build when nothing changed.
tar -C "$STAGE" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - llama.cpp | xz -T"$XZT" -9 >"$CARRY/llama-src.tar.xz" \
  || die "tar of llama.cpp failed"

# --- 4. node_modules the device needs (with their dependencies) ---------------------------------------------
MODS="$(node -e '
const fs = require("fs"), path = require("path");
const seen = new Set();
const dir = (n) => path.join("node_modules", n);
function walk(n) {
  if (seen.has(n)) return;
  if (!fs.existsSync(path.join(dir(n), "package.json"))) { console.error("missing dependency " + n); process.exit(1); }
  seen.add(n);
  const pj = JSON.parse(fs.readFileSync(path.join(dir(n), "package.json"), "utf8"));
  for (const d of Object.keys({ ...(pj.dependencies || {}), ...(pj.optionalDependencies || {}) }))
    if (fs.existsSync(dir(d))) walk(d); // optional platform packages that are not installed are skipped
}
for (const n of ["mocha", "chai", "tsx", "node-addon-api"]) walk(n);
console.log([...seen].sort().join("\n"));
')" || die "could not list node_modules"
say "node_modules: $(echo "$MODS" | wc -l) packages"
(cd node_modules && echo "$MODS" | tar --exclude='*.md' --exclude='*.map' --exclude='*.d.ts' --exclude='*.d.mts' --exclude='*.d.cts' -cf - -T -) \
  | xz -T"$XZT" -6 >"$CARRY/node-modules.tar.xz" || die "tar of node_modules failed"

# --- 5. ts-lib (JavaScript only) -----------------------------------------------------------------------------
rm -f "$CARRY/ts-lib.tar.xz"
if [ "$TSC_OK" = 1 ]; then
  tar --exclude='*.map' --exclude='*.d.ts' -cf - ts-lib | xz -T"$XZT" -6 >"$CARRY/ts-lib.tar.xz" || die "tar of ts-lib failed"
fi

# --- 6. manifest and size check ------------------------------------------------------------------------------
CARRY_BYTES=$(du -cb "$CARRY"/*.xz | tail -1 | cut -f1)
TREE_BYTES=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | awk '$2=="total"{s+=$1} END{print s+0}')
TOTAL=$((CARRY_BYTES + TREE_BYTES))
{
  echo "prepared $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD 2>/dev/null) (+ working tree); node $NODE_VER; llama.cpp $COMMIT"
  (cd "$CARRY" && for f in *.xz; do printf '%10d  %s  %s\n' "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -c1-16)" "$f"; done)
  echo "carry total:        $CARRY_BYTES bytes"
  echo "tree (tracked + untracked, not ignored): $TREE_BYTES bytes"
  echo "transfer total:     $TOTAL bytes of $LIMIT ($((TOTAL * 100 / LIMIT))%)"
} >"$CARRY/MANIFEST.txt"
cat "$CARRY/MANIFEST.txt"
say "done in $(($(date +%s) - T0)) s"
[ "$TOTAL" -le "$LIMIT" ] || die "over the 64 MiB limit by $((TOTAL - LIMIT)) bytes"
