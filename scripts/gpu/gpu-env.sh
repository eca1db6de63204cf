# Sourced by device-build.sh and device-bench.sh: paths, settings and the step runner shared by the two device
# calls. Everything it writes lives in git-ignored paths (build/, node_modules/, ts-lib/), which the device machine
# keeps between the two calls.
#
# Settings (environment):
#   OUT                where result files go (set by the device tool; default build/gpu-out)
#   HSD_GPU_BACKEND    cuda (default) | cpu: cpu runs the same steps without CUDA, for the local rehearsal
#   HSD_CUDA_ARCH      CMAKE_CUDA_ARCHITECTURES (default 90: H100 / H200)
#   HSD_JOBS           compile jobs (default: all CPUs)
#   HSD_GGUF_DIR       where the random GGUF files go (default: /dev/shm/hsd-gguf when /dev/shm has room, else
#                      build/gpu-models; the choice is remembered in build/gpu-state.env for the second call)
#   HSD_GGUF_ARGS      extra arguments for make-random-gguf.py (the rehearsal uses --scale 0.1 --vocab 8192)
#   HSD_GGUF_NEED_GIB  free space the default GGUF folder must have (default 30)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1
OUT="${OUT:-$ROOT/build/gpu-out}"
mkdir -p "$OUT"
BACKEND="${HSD_GPU_BACKEND:-cuda}"
CUDA_ARCH="${HSD_CUDA_ARCH:-90}"
JOBS="${HSD_JOBS:-$(nproc)}"
CARRY="$ROOT/.device-carry"
TOOLS="$ROOT/build/gpu-tools"
STATE="$ROOT/build/gpu-state.env"
LLAMA_SRC="$ROOT/build/llama.cpp-src"
LLAMA_WORK="$ROOT/build/llama-$BACKEND-build"
LLAMA_PREFIX="$ROOT/build/llama-$BACKEND"
export PATH="$TOOLS/bin:$PATH"
# CUDA: nvcc on PATH, and its libraries findable by the dlopen()ed ggml-cuda plugin (belt and braces with RPATH).
if [ "$BACKEND" = cuda ]; then
  if ! command -v nvcc >/dev/null; then
    for d in /usr/local/cuda/bin /usr/local/cuda-13*/bin; do [ -x "$d/nvcc" ] && export PATH="$PATH:$d" && break; done
  fi
  if command -v nvcc >/dev/null; then
    CUDA_HOME_GUESS="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
    for d in "$CUDA_HOME_GUESS/lib64" "$CUDA_HOME_GUESS/lib" "$CUDA_HOME_GUESS/targets/x86_64-linux/lib"; do
      [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
    done
  fi
fi
export PYTHONUNBUFFERED=1
export GGUF_PY="$LLAMA_SRC/gguf-py"
PY="${HSD_PYTHON:-python3}"

SUMMARY=()
now() { date +%s.%N; }
# step NAME COMMAND...: runs one step, prints its time, records "NAME rc seconds" for the summary; never exits.
step() {
  local name="$1"
  shift
  local t0 rc dt
  t0=$(now)
  echo
  echo "=== [$name] start $(date -u +%H:%M:%S)"
  "$@"
  rc=$?
  dt=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  echo "=== [$name] rc=$rc in ${dt} s"
  SUMMARY+=("$(printf '%-26s %-8s %8s s' "$name" "rc=$rc" "$dt")")
  return "$rc"
}
# skip NAME WHY: records a step that could not run because an earlier one failed.
skip() {
  echo "=== [$1] SKIPPED: $2"
  SUMMARY+=("$(printf '%-26s %-8s %s' "$1" "skipped" "$2")")
}
print_summary() {
  local file="$1"
  {
    echo "summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), backend $BACKEND):"
    printf '  %s\n' "${SUMMARY[@]}"
  } | tee "$file"
}

# Everything from here on goes to the terminal and to $OUT/$1 as well; the run's clock starts.
begin_log() {
  exec 3>&1 4>&2
  exec > >(tee -a "$OUT/$1") 2>&1
  TEE_PID=$!
  T_START=$(now)
}

# The total row, the summary (also written to $OUT/$1), the terminal restored; always exit 0.
end_run() {
  SUMMARY+=("$(printf '%-26s %-8s %8s s' total "" "$(awk -v a="$T_START" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')")")
  print_summary "$OUT/$1"
  exec 1>&3 2>&4
  wait "$TEE_PID" 2>/dev/null
  exit 0
}

# The folder of the random GGUF family: fixed by the first call, reused by the second.
gguf_dir() {
  if [ -n "${HSD_GGUF_DIR:-}" ]; then echo "$HSD_GGUF_DIR"; return; fi
  if [ -f "$STATE" ] && grep -q '^GGUF_DIR=' "$STATE"; then sed -n 's/^GGUF_DIR=//p' "$STATE" | tail -1; return; fi
  local need=$(( ${HSD_GGUF_NEED_GIB:-30} * 1024 * 1024 )) avail dir
  avail=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 { print $4 }')
  if [ -n "$avail" ] && [ "$avail" -ge "$need" ]; then dir=/dev/shm/hsd-gguf; else dir="$ROOT/build/gpu-models"; fi
  mkdir -p "$(dirname "$STATE")"
  echo "GGUF_DIR=$dir" >>"$STATE"
  echo "$dir"
}

# unxz FILE: decompress to stdout; xz may be missing from the image, Python's lzma module then does it.
unxz() {
  if [ -z "${HSD_NO_XZ:-}" ] && command -v xz >/dev/null; then xz -dc "$1"
  else "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer, 1 << 20)' "$1"
  fi
}

have_node() { [ -x "$TOOLS/bin/node" ] && "$TOOLS/bin/node" --version >/dev/null 2>&1; }
