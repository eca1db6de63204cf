#!/usr/bin/env bash
# Device call 1 of 2 (the GPU machine; no Node.js, no internet there): unpack the carried tools, build llama.cpp
# with CUDA for sm_90 from our source, build the addon against it, run the native tests and a CPU-vs-GPU check
# with every layer on the GPU; meanwhile write the random-weight GGUF family for call 2 (device-bench.sh).
#
#   bash scripts/gpu/device-build.sh        with .device-carry/ carried (made by scripts/gpu/prepare-carry.sh)
#
# Every step prints its time; a failing step is logged and the rest go on, except steps that need its output.
# Always exits 0; the summary at the end (also $OUT/build-summary.txt) says what passed.
# Results in $OUT: build-log.txt, env.txt, native-tests.txt, gpu-check.json, gguf.txt, build-summary.txt.
# Local rehearsal (no CUDA): HSD_GPU_BACKEND=cpu, see scripts/gpu/README.md.
set -uo pipefail
source "$(dirname "$0")/gpu-env.sh"
begin_log build-log.txt
echo "device-build: backend $BACKEND, cuda arch $CUDA_ARCH, $JOBS jobs, root $ROOT, OUT $OUT"

# ---------------------------------------------------------------------------------------------------------------
env_info() {
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "uname: $(uname -a)"
    echo "cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo)"
    free -g | sed 's/^/mem: /'
    df -h "$ROOT" /dev/shm 2>/dev/null | sed 's/^/df: /'
    if command -v nvidia-smi >/dev/null; then
      nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | sed 's/^/gpu: /'
    else echo "gpu: no nvidia-smi"; fi
    echo "nvcc: $(nvcc --version 2>/dev/null | tail -2 | tr '\n' ' ' || echo none)"
    echo "cmake: $(cmake --version 2>/dev/null | head -1)"
    echo "ninja: $(ninja --version 2>/dev/null || echo none)"
    echo "g++: $(g++ --version 2>/dev/null | head -1)"
    echo "make: $(make --version 2>/dev/null | head -1 || echo none)"
    echo "git: $(git --version 2>/dev/null || echo none)"
    echo "xz: $(xz --version 2>/dev/null | head -1 || echo 'none (python lzma used)')"
    echo "python3: $($PY -c 'import sys, numpy; print(sys.version.split()[0], "numpy", numpy.__version__)' 2>&1)"
    echo "carry: $(ls -la "$CARRY" 2>&1 | tail -n +2 | awk '{print $5, $9}' | tr '\n' ' ')"
  } | tee "$OUT/env.txt"
}

unpack_node() {
  [ -s "$CARRY/node.xz" ] || { echo "missing $CARRY/node.xz (run scripts/gpu/prepare-carry.sh and carry .device-carry)"; return 1; }
  mkdir -p "$TOOLS/bin" "$TOOLS/include"
  unxz "$CARRY/node.xz" >"$TOOLS/bin/node.tmp" && chmod +x "$TOOLS/bin/node.tmp" && mv "$TOOLS/bin/node.tmp" "$TOOLS/bin/node" || return 1
  unxz "$CARRY/node-headers.tar.xz" | tar -C "$TOOLS/include" -xf - || return 1
  "$TOOLS/bin/node" --version && [ -f "$TOOLS/include/node/node_api.h" ]
}

unpack_js() {
  # node_modules (mocha, chai, tsx, node-addon-api) and the compiled library. Extracted over what is there.
  mkdir -p node_modules && unxz "$CARRY/node-modules.tar.xz" | tar -C node_modules -xf - || return 1
  if [ -f "$CARRY/ts-lib.tar.xz" ]; then rm -rf ts-lib && unxz "$CARRY/ts-lib.tar.xz" | tar -xf - || return 1
  else echo "no ts-lib.tar.xz (tsc failed when it was packed): the scripts run the sources through tsx anyway"; fi
  node -e 'require("node-addon-api"); import("tsx/esm/api").then(() => console.log("node_modules ok"))'
}

unpack_llama() {
  local stamp="$LLAMA_SRC/.carry-sha256" sha
  sha=$(sha256sum "$CARRY/llama-src.tar.xz" | cut -c1-64)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sha" ]; then echo "llama.cpp source already unpacked"; return 0; fi
  rm -rf "$LLAMA_SRC" && mkdir -p "$LLAMA_SRC" || return 1
  unxz "$CARRY/llama-src.tar.xz" | tar -C "$LLAMA_SRC" --strip-components=1 -xf - || return 1
  echo "$sha" >"$stamp"
  echo "llama.cpp $(cat "$LLAMA_SRC/LLAMA_COMMIT")"
}

GEN_PID=""
start_gguf() {
  local dir
  dir=$(gguf_dir)
  echo "random GGUF family -> $dir (log build/gpu-gguf.log)"
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  nice -n 5 "$PY" scripts/gpu/make-random-gguf.py --out "$dir" ${HSD_GGUF_ARGS:-} >"$ROOT/build/gpu-gguf.log" 2>&1 &
  GEN_PID=$!
}

cmake_configure() {
  # The defines of scripts/build-llama.mjs --single-cpu (shared libs, dynamically loaded backends, no tools or
  # tests; one CPU backend with ggml's default x86 instruction set: GGML_NATIVE is refused with GGML_BACKEND_DL)
  # and CUDA for the given arch. Only the library targets exist with these.
  local cuda=() gen=()
  [ "$BACKEND" = cuda ] && cuda=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH" -DGGML_CUDA_NCCL=OFF)
  command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$LLAMA_SRC" -B "$LLAMA_WORK" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON "-DGGML_BACKEND_DIR=$LLAMA_PREFIX/lib" \
    -DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_OPENMP=OFF -DGGML_CCACHE=OFF \
    -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_ALL_WARNINGS=OFF \
    -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF \
    "-DCMAKE_INSTALL_PREFIX=$LLAMA_PREFIX" -DCMAKE_INSTALL_LIBDIR=lib '-DCMAKE_INSTALL_RPATH=$ORIGIN' \
    -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON \
    "${cuda[@]}"
}

cmake_build() {
  cmake --build "$LLAMA_WORK" --parallel "$JOBS" || return 1
  rm -rf "$LLAMA_PREFIX" && cmake --install "$LLAMA_WORK" --prefix "$LLAMA_PREFIX" >/dev/null || return 1
  ls -la "$LLAMA_PREFIX/lib"
  if [ "$BACKEND" = cuda ]; then
    ls "$LLAMA_PREFIX"/lib/libggml-cuda*.so >/dev/null || { echo "no libggml-cuda in $LLAMA_PREFIX/lib"; return 1; }
    # The CUDA plugin is dlopen()ed at run time: its CUDA libraries must resolve (RPATH or LD_LIBRARY_PATH).
    ldd "$LLAMA_PREFIX"/lib/libggml-cuda*.so | grep -E 'cuda|cublas|not found'
    ! ldd "$LLAMA_PREFIX"/lib/libggml-cuda*.so | grep -q 'not found'
  fi
}

build_addon() {
  # What scripts/build-addon.mjs does through node-gyp (not available there), with g++ directly: the sources
  # and flags of binding.gyp, linked against the libs just built; then build/native-config.json for load.ts.
  local lib="$LLAMA_PREFIX/lib" napi srcs obj=() pids=() s o rc=0
  napi=$(node -p 'require("node-addon-api").include_dir') || return 1
  srcs=$("$PY" -c 'import ast; print(" ".join(ast.literal_eval(open("binding.gyp").read())["targets"][0]["sources"]))') || return 1
  mkdir -p build/Release/obj
  for s in $srcs; do
    o="build/Release/obj/$(basename "${s%.cc}").o"
    obj+=("$o")
    g++ -c -fPIC -pthread -std=c++17 -fexceptions -O3 -Wall -Wextra -Wno-unused-parameter \
      -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED -DBUILDING_NODE_EXTENSION \
      -DNODE_GYP_MODULE_NAME=hsd_native -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64 \
      -I"$TOOLS/include/node" -I"$napi" -I"$LLAMA_SRC/include" -I"$LLAMA_SRC/ggml/include" "$s" -o "$o" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ "$rc" = 0 ] || return 1
  g++ -shared -pthread -o build/Release/hsd_native.node "${obj[@]}" -L"$lib" -l:libllama.so -l:libggml.so -l:libggml-base.so \
    -Wl,-rpath,"$lib" || return 1
  BACKEND="$BACKEND" LIB="$lib" COMMIT="$(cat "$LLAMA_SRC/LLAMA_COMMIT")" INC="$LLAMA_SRC" node -e '
    const fs = require("fs");
    const e = process.env;
    fs.writeFileSync("build/native-build.json", JSON.stringify({ includeDirs: [e.INC + "/include", e.INC + "/ggml/include"], libDir: e.LIB,
      libraries: ["-l:libllama.so", "-l:libggml.so", "-l:libggml-base.so"], ldflags: ["-L" + e.LIB, "-Wl,-rpath," + e.LIB] }, null, 2) + "\n");
    fs.writeFileSync("build/native-config.json", JSON.stringify({ libDir: e.LIB, backend: e.BACKEND, source: "build-llama",
      addon: "build/Release/hsd_native.node", llamaCommit: e.COMMIT, builtAt: new Date().toISOString() }, null, 2) + "\n");
    console.log(fs.readFileSync("build/native-config.json", "utf8"));'
}

smoke() {
  node -e '
    const cfg = require("./build/native-config.json");
    const a = require("./" + cfg.addon);
    const d = a.loadBackends(cfg.libDir);
    console.log(JSON.stringify(d));
    console.log(a.systemInfo());
    if (cfg.backend === "cuda" && !d.some((x) => x.type === "gpu")) { console.error("no GPU device among the loaded backends"); process.exit(1); }' && return 0
  [ "$BACKEND" = cuda ] && ldd "$LLAMA_PREFIX"/lib/libggml-cuda*.so
  return 1
}

native_tests() {
  # The native tests with every layer on the GPU (test/native.test.ts reads HSD_TEST_GPU_LAYERS), plus the
  # synthetic-acceptance unit test. test/hsd-gguf.test.ts is left to the CPU run: its 400 generations take
  # minutes and gpu-check.ts already checks greedy HSD against the target alone on the GPU.
  local files=(test/synthetic-acceptance.test.ts test/native.test.ts)
  HSD_TEST_GPU_LAYERS="${HSD_TEST_GPU_LAYERS:-999}" timeout -k 10 "${HSD_TEST_TIMEOUT_S:-180}" node node_modules/mocha/bin/mocha.js \
    --no-config --import=tsx --timeout 120000 --reporter ./test/helpers/reporter.cjs "${files[@]}" 2>&1 | tee "$OUT/native-tests.txt"
}

gpu_check() {
  node --import tsx scripts/gpu/gpu-check.ts --models models/tiny --gpu-layers "${HSD_CHECK_GPU_LAYERS:-999}" --out "$OUT/gpu-check.json"
}

wait_gguf() {
  [ -n "$GEN_PID" ] || return 1
  wait "$GEN_PID"
  local rc=$?
  cat "$ROOT/build/gpu-gguf.log"
  { cat "$ROOT/build/gpu-gguf.log"; ls -la "$(gguf_dir)"; } >"$OUT/gguf.txt"
  return $rc
}

# ---------------------------------------------------------------------------------------------------------------
step env env_info
NODE_OK=0; LLAMA_OK=0; ADDON_OK=0
step node unpack_node && NODE_OK=1
if [ "$NODE_OK" = 1 ]; then step js unpack_js; else skip js "no node"; fi
if step llama-src unpack_llama; then
  step gguf-start start_gguf
  step cmake-configure cmake_configure && step cmake-build cmake_build && LLAMA_OK=1
else
  skip gguf-start "no gguf-py (llama.cpp source)"; skip cmake-configure "no source"
fi
if [ "$LLAMA_OK" = 1 ] && [ "$NODE_OK" = 1 ]; then
  step addon build_addon && step smoke smoke && ADDON_OK=1
else
  skip addon "needs node and the llama.cpp libraries"
fi
if [ "$ADDON_OK" = 1 ]; then
  step native-tests native_tests
  step gpu-check gpu_check
else
  skip native-tests "no working addon"; skip gpu-check "no working addon"
fi
step gguf-wait wait_gguf
end_run build-summary.txt
