#!/usr/bin/env bash
# Makes ggml/testdata/mixes.json, the golden of TestMixesMatchLlamaQuantize: llama.cpp's own
# llama-quantize (built from the source node-llama-cpp ships, as make bench builds llama-bench)
# quantizes the test's input to Q4_K_M and Q6_K, and the test records each tensor's type and the
# sha256 of its bytes. CI never runs this: the golden is committed.
# Usage: tools/reference/make_mix_golden.sh [WORK]   (default .bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mkdir -p "${1:-.bench}" && cd "${1:-.bench}" && pwd)"
if [ ! -d tools/bench/node_modules/node-llama-cpp/llama ]; then
  (cd tools/bench && npm install --no-audit --no-fund --no-save)
fi
tools/bench/llama-bench.sh "$work" > /dev/null # the source and the configured build
build="$work/llama-bench-openmp-ON"
cmake --build "$build" --target llama-quantize -j "$(nproc)" >&2
mix="$work/mix-golden"
mkdir -p "$mix"
go test ./ggml -run TestMixesMatchLlamaQuantize -count=1 -args -write-mix-input "$mix/in.gguf"
for t in Q4_K_M Q6_K; do
  "$build/bin/llama-quantize" "$mix/in.gguf" "$mix/$t.gguf" "$t" >&2
done
go test ./ggml -run TestMixesMatchLlamaQuantize -count=1 -args -mix-golden-from "$mix"
echo "wrote ggml/testdata/mixes.json (llama.cpp $(git -C "$work/llama.cpp" rev-parse --short HEAD))"
