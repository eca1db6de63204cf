#!/usr/bin/env bash
# Local rehearsal of the two device calls, on the CPU, before spending device time: copies the working tree the
# way the device tool does (tracked + untracked-not-ignored files + the carried .device-carry/) to $SIM/repo,
# hides this machine's node, Node headers and npm's node-gyp (in a private mount namespace: the device has none
# of them), and runs device-build.sh / device-bench.sh there with HSD_GPU_BACKEND=cpu, a tiny random family
# (--scale 0.1 --vocab 8192) and one ggml thread. Only CUDA itself is left untested.
#
#   bash scripts/gpu/rehearse.sh [build|bench|all]       (default all; needs root for unshare/mount, and rsync)
#
# The first build compiles llama.cpp's CPU libraries from source (about 10 minutes on 2 busy cores); later runs
# reuse $SIM/repo/build like the warm device does. Results: $SIM/out-build, $SIM/out-bench. SIM defaults to
# /tmp/hsd-devsim. Run scripts/gpu/prepare-carry.sh first.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SIM="${SIM:-/tmp/hsd-devsim}"
WHAT="${1:-all}"
[ -d "$ROOT/.device-carry" ] || { echo "rehearse: run scripts/gpu/prepare-carry.sh first" >&2; exit 1; }
command -v rsync >/dev/null || { echo "rehearse: needs rsync (apt-get install rsync)" >&2; exit 1; }

mkdir -p "$SIM/repo"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | rsync -a --files-from=- --from0 ./ "$SIM/repo/")
rsync -a --delete "$ROOT/.device-carry/" "$SIM/repo/.device-carry/"
echo "rehearse: tree copied to $SIM/repo ($(du -sh "$SIM/repo" | cut -f1), build/ kept from earlier runs)"

EMPTY="$SIM/empty-file"
: >"$EMPTY"
run() {
  local script="$1" out="$2"
  rm -rf "$out" && mkdir -p "$out"
  unshare -m bash -c "
    mount --bind '$EMPTY' \"\$(readlink -f \"\$(command -v node)\")\" || exit 1
    for d in /usr/include/node /usr/local/include/node /usr/lib/node_modules /usr/local/lib/node_modules; do
      [ -d \$d ] && mount -t tmpfs none \$d
    done
    if node --version >/dev/null 2>&1; then echo 'rehearse: could not hide node' >&2; exit 1; fi
    cd '$SIM/repo'
    env OUT='$out' HSD_GPU_BACKEND=cpu HSD_JOBS=2 HSD_GGUF_DIR='$SIM/gguf' HSD_CHECK_GPU_LAYERS=999 \
      HSD_GGUF_ARGS='--scale 0.1 --vocab 8192' \
      HSD_BENCH_ARGS='--threads 1 --max-n 8 --depth 64 --tokens 24 --repeats 2 --cost-reps 3 --cost-warmup 1 --max-threshold 6' \
      nice -n 10 bash scripts/gpu/$script
  "
  echo "rehearse: $script exited $?; files in $out:"
  ls -la "$out"
}
case "$WHAT" in
  build) run device-build.sh "$SIM/out-build" ;;
  bench) run device-bench.sh "$SIM/out-bench" ;;
  all) run device-build.sh "$SIM/out-build" && run device-bench.sh "$SIM/out-bench" ;;
  *) echo "usage: rehearse.sh [build|bench|all]" >&2; exit 2 ;;
esac
