#!/usr/bin/env bash
# Builds ggml's CUDA backend as the shared libraries ollama's loader opens at run time
# (libggml-cuda.so and the libggml-base.so it links), with CMake from the ggml sources of the
# ollama module that go.mod pins, and copies them into OUT (lib/ollama: the loader looks in
# <the executable's folder>/../lib/ollama, or in OLLAMA_LIBRARY_PATH).
#   tools/gpu/build-cuda.sh OLLAMA_SRC BUILD_DIR OUT [CUDA_ARCHITECTURES]
# CUDA_ARCHITECTURES: "native" (the card present), or e.g. 90 (H100/H200) to build for one.
set -euo pipefail
src="$1" build="$2" out="$3" arch="${4:-native}"
command -v nvcc >/dev/null || { echo "build-cuda: nvcc (the CUDA toolkit) is not on PATH" >&2; exit 1; }
command -v cmake >/dev/null || { echo "build-cuda: cmake is not on PATH" >&2; exit 1; }
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$src" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch"
cmake --build "$build" --target ggml-cuda -j "$(nproc)"
mkdir -p "$out"
cp -a "$build"/lib/ollama/libggml-base.so* "$build"/lib/ollama/libggml-cuda.so "$out"/
echo "build-cuda: $(ls "$out" | tr '\n' ' ')in $out"
