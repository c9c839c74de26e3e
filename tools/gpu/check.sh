#!/usr/bin/env bash
# The GPU check (issue 14), run on the GPU machine from the repository's root, with .gpu/ from
# tools/gpu/bundle.sh carried along: builds ggml's CUDA backend there (one architecture), then
# with the toklip binary built here:
#   1. toklip system: the devices, and where the demo model's layers go with every layer on the GPU
#   2. parity, the demo model: the first 20 items of each evaluation set on the CPU, then on the
#      GPU, every answer and drawing compared (eval-demo -against)
#   3. parity, random Qwen2.5-0.5B-shaped and TokLIP-S files: logits and greedy continuation,
#      VQ ids, features and decoded pixels, GPU against CPU (bench parity; tolerances there)
#   4. speed on the GPU: prefill 512 / decode 128 tok/s, F16 and Q8_0 (bench backbone); TokLIP-S
#      and L encode and decode (bench vision); a guided 256-id image against 256 plain decode
#      steps (bench unified); and llama.cpp's own llama-bench, built there with CUDA, on the same
#      files and card
# Results go to OUT (the device tool's $OUT): one text file per step, and the logs.
#   tools/gpu/check.sh OUT        (CUDA_ARCHITECTURES, default 90: H100/H200)
set -uo pipefail
out="${1:?usage: tools/gpu/check.sh OUT}"
arch="${CUDA_ARCHITECTURES:-90}"
b=.gpu w=.gpu-work  # a dot folder: go ./... skips it (the ggml tree unpacked there holds Go files)
mkdir -p "$out" "$w/files"
t0=$(date +%s)
step() { echo "== $* (at $(($(date +%s) - t0)) s)" | tee -a "$out/steps.txt"; }
failed=()
check() { # name, command...: runs it, records a failure
  local name="$1"; shift
  if ! "$@"; then failed+=("$name"); echo "   FAILED: $name" | tee -a "$out/steps.txt"; fi
}

step "unpack (nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null))"
xz -dc "$b/toklip.xz" > "$w/toklip" && xz -dc "$b/bench.xz" > "$w/bench" && chmod +x "$w/toklip" "$w/bench"
mkdir -p "$w/ollama" "$w/llama.cpp"
tar -C "$w/ollama" -xJf "$b/ollama-ggml.tar.xz" && tar -C "$w/llama.cpp" -xJf "$b/llama.cpp.tar.xz"
xz -dc "$b/tokenizer.json.xz" > "$w/tokenizer.json"

# llama.cpp's CUDA build runs beside ollama's (16 cores between them): the two ggml trees differ,
# so each is built once, for one architecture.
step "build: ollama's ggml-cuda and llama.cpp's llama-bench (CUDA_ARCHITECTURES=$arch)"
(cmake -S "$w/llama.cpp" -B "$w/llama" -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF &&
  cmake --build "$w/llama" --target llama-bench -j 8) > "$out/build-llama.log" 2>&1 &
llama=$!
check build-cuda tools/gpu/build-cuda.sh "$w/ollama" "$w/cuda" lib/ollama "$arch" > "$out/build-cuda.log" 2>&1
export OLLAMA_LIBRARY_PATH="$PWD/lib/ollama" TOKLIP_CACHE="$PWD/$w/cache" TOKLIP_MODELS="$PWD/$w/models"

step "system"
check system "$w/toklip" system -gpu-layers all > "$out/system.txt" 2>&1
grep -q " gpu " "$out/system.txt" || failed+=("no GPU device: see system.txt and build-cuda.log")

step "demo model: the first 20 of each set, CPU then GPU"
check demo-cpu "$w/toklip" eval-demo -limit 20 -gpu-layers 0 -outputs "$w/demo-cpu" > "$out/demo-cpu.txt" 2>&1
check demo-gpu "$w/toklip" eval-demo -limit 20 -gpu-layers all -against "$w/demo-cpu" > "$out/demo-gpu.txt" 2>&1

step "random files: TokLIP on the GPU (writes them), backbone on the GPU"
check vision "$w/bench" vision -dir "$w/files" -gpu-layers -1 > "$out/vision.txt" 2>&1
check backbone "$w/bench" backbone -dir "$w/files" -tokenizer "$w/tokenizer.json" -llamacpp "" -gpu-layers -1 > "$out/backbone.txt" 2>&1

step "parity: random files, GPU against CPU"
check parity "$w/bench" parity -lm "$w/files/qwen2.5-0.5b-random-F16.gguf" -vision "$w/files/toklip-random-256.gguf" > "$out/parity.txt" 2>&1

step "unified: a guided 256-id image against 256 plain decode steps, on the GPU"
check unified "$w/bench" unified -dir "$w/files" -gpu-layers -1 > "$out/unified.txt" 2>&1

step "llama-bench with CUDA, the same files"
wait "$llama" || failed+=("build-llama")
if [ -x "$w/llama/bin/llama-bench" ]; then
  check llama-bench "$w/llama/bin/llama-bench" -m "$w/files/qwen2.5-0.5b-random-F16.gguf" -m "$w/files/qwen2.5-0.5b-random-Q8_0.gguf" \
    -p 512 -n 128 -ngl 99 -fa 0,1 -r 3 -o md > "$out/llama-bench.md" 2>&1
fi

step "done: ${#failed[@]} failed ${failed[*]:-}"
[ "${#failed[@]}" -eq 0 ]
