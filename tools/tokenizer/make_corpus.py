"""Assembles tokenizer/testdata/corpus.txt: the project's own Go, Python and JSON files and prose,
as they stood when the corpus was made, and the hand-written multilingual text in multilingual.py.
The corpus is a committed snapshot; rerunning this later gives a different file (and needs new
golden ids: node tools/tokenizer/golden.mjs)."""

import os
import sys

import multilingual

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SOURCES = [
    # Where these files live now (the committed corpus was made when the first six and the last
    # Go file sat in ggml/ and llm/).
    "gguf/gguf.go", "gguf/check.go", "gguf/write.go", "models/qwen2llama/model.go", "llm/backbone.go",
    "models/qwen2llama/config.go", "llm/convert/convert.go", "llm/convert/hfconfig.go", "cmd/toklip/main.go",
    "ggml/quantize.go", "models/qwen2llama/check.go",
    "tools/reference/decoder.py", "tools/reference/make_golden.py",
    "llm/testdata/qwen2/hf/config.json", "llm/testdata/llama/hf/config.json",
    "llm/testdata/qwen2/hf/tokenizer_config.json", "llm/testdata/qwen2/golden.json",
    "README.md", "BENCHMARKS.md",
]


def main():
    parts = []
    for rel in SOURCES:
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            parts.append(f.read())
    parts.append(multilingual.text())
    corpus = "\n".join(parts)
    out = os.path.join(ROOT, "tokenizer", "testdata", "corpus.txt")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write(corpus)
    print(f"{out}: {len(corpus.encode())} bytes, {corpus.count(chr(10))} lines", file=sys.stderr)


if __name__ == "__main__":
    main()
