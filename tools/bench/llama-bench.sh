#!/usr/bin/env bash
# Builds llama.cpp's own benchmark binary, llama-bench, natively for this CPU from the llama.cpp
# source that node-llama-cpp ships (its gitRelease.bundle: no network), twice: with OpenMP and
# without (ggml's own thread pool), since either may win on a given machine. AMX is switched off
# as in toklip's build (in these VMs ggml's AMX kernel faults). Each build is kept in WORK and
# reused while the source commit and the flags are the same.
# Usage: tools/bench/llama-bench.sh WORK   (prints the two binaries' paths)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mkdir -p "$1" && cd "$1" && pwd)"
bundle="$here/node_modules/node-llama-cpp/llama/gitRelease.bundle"
[ -f "$bundle" ] || { echo "no $bundle: install the bench's npm packages first (tools/bench/run.sh does)" >&2; exit 1; }
command -v cmake >/dev/null || { echo "llama-bench's build needs cmake (apt-get install cmake)" >&2; exit 1; }
src="$work/llama.cpp"
if [ ! -d "$src/.git" ]; then
  git clone -q "$bundle" "$src" 2>/dev/null
fi
commit="$(git -C "$src" rev-parse HEAD)"
flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
for omp in ON OFF; do
  build="$work/llama-bench-openmp-$omp"
  stamp="$commit $flags"
  if [ "$(cat "$build/toklip-stamp" 2>/dev/null)" != "$stamp" ] || [ ! -x "$build/bin/llama-bench" ]; then
    echo "building llama-bench (OpenMP $omp) at $commit ..." >&2
    gen=()
    command -v ninja >/dev/null && gen=(-G Ninja)
    cmake -S "$src" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP="$omp" \
      -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
      -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
    cmake --build "$build" --target llama-bench -j "$(nproc)" >&2
    echo "$stamp" > "$build/toklip-stamp"
  fi
  echo "$build/bin/llama-bench"
done
