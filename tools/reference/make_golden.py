"""Makes the small random-weight checkpoints and golden outputs that llm's parity tests read.

For each model it writes, under OUT/<name>/:
  hf/            a HuggingFace checkpoint folder: config.json, model.safetensors, tokenizer.json,
                 tokenizer_config.json (the Go tests convert it with toklip's converter)
  golden.json    prompt ids, the 32-token greedy continuation, the embedding-override case
  *.f32          little-endian float32 arrays named in golden.json

Two models cover the backbone's variants:
  qwen2  F32 weights, q/k/v biases, GQA 4:2, tied output, linear RoPE scaling, image-token keys
  llama  BF16 weights, GQA 6:2, untied output, Llama-3 RoPE frequency scaling

Outputs are computed in float64 by decoder.py, with no KV cache. Run with Debian's torch:
  /usr/bin/python3 tools/reference/make_golden.py --out llm/testdata
"""

import argparse
import json
import os
import struct

import torch

from decoder import Decoder

VOCAB = 512
GREEDY_STEPS = 32


def bytes_to_unicode():
    """GPT-2's map from bytes to printable characters, used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train_bpe(text, merges_wanted):
    """A tiny byte-level BPE trainer: enough merges to make a realistic tokenizer.json."""
    b2u = bytes_to_unicode()
    words = [[b2u[b] for b in (" " + w).encode()] for w in text.split()]
    vocab = {b2u[b]: b for b in range(256)}
    merges = []
    for _ in range(merges_wanted):
        counts = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        (a, b), _ = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append([a, b])
        vocab[a + b] = len(vocab)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i : i + 2] = [a + b]
                i += 1
    return vocab, merges


TEXT = (
    "the quick brown fox jumps over the lazy dog while the cat watches the red square "
    "and the blue circle near the green triangle in the center of the image then the "
    "small star moves to the top left corner and the large square stays at the bottom"
)

REGEX = {
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}


def tokenizer_files(arch, specials, image_tokens):
    vocab, merges = train_bpe(TEXT, 60)
    added = []
    for name in specials + [f"<|img_{i}|>" for i in range(image_tokens)]:
        added.append({"id": len(vocab) + len(added), "content": name, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    tok = {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": {"type": "NFC"} if arch == "qwen2" else None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": REGEX[arch]}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": arch == "llama",
                  "vocab": vocab, "merges": merges},
    }
    if arch == "llama":
        bos = specials[0]
        tok["post_processor"] = {"type": "TemplateProcessing",
                                 "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                                 "pair": [], "special_tokens": {bos: {"id": bos, "ids": [len(vocab)], "tokens": [bos]}}}
    ids = {a["content"]: a["id"] for a in added}
    return tok, ids


def write_safetensors(path, tensors, dtype):
    names = sorted(tensors)
    header, blobs, offset = {}, [], 0
    code = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}[dtype]
    for name in names:
        t = tensors[name].to(dtype).contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if dtype != torch.float32 else t.numpy().tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def random_weights(cfg, gen, biases, gain):
    h, ffn = cfg["hidden_size"], cfg["intermediate_size"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or h // heads

    def r(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    w = {"model.embed_tokens.weight": r(VOCAB, h, std=1.0), "model.norm.weight": 1 + r(h, std=0.1)}
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = r(VOCAB, h, std=1.0)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + r(h, std=0.1)
        w[p + "post_attention_layernorm.weight"] = 1 + r(h, std=0.1)
        w[p + "self_attn.q_proj.weight"] = r(heads * hd, h, std=h ** -0.5 * 2)
        w[p + "self_attn.k_proj.weight"] = r(kv * hd, h, std=h ** -0.5 * 2)
        w[p + "self_attn.v_proj.weight"] = r(kv * hd, h, std=h ** -0.5)
        w[p + "self_attn.o_proj.weight"] = r(h, heads * hd, std=(heads * hd) ** -0.5 * gain)
        w[p + "mlp.gate_proj.weight"] = r(ffn, h, std=h ** -0.5)
        w[p + "mlp.up_proj.weight"] = r(ffn, h, std=h ** -0.5)
        w[p + "mlp.down_proj.weight"] = r(h, ffn, std=ffn ** -0.5 * gain)
        if biases:
            w[p + "self_attn.q_proj.bias"] = r(heads * hd, std=0.1)
            w[p + "self_attn.k_proj.bias"] = r(kv * hd, std=0.1)
            w[p + "self_attn.v_proj.bias"] = r(kv * hd, std=0.1)
    return w


def write_f32(path, t):
    with open(path, "wb") as f:
        f.write(t.to(torch.float32).contiguous().numpy().tobytes())


def make(out, name, cfg, specials, image_tokens, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    arch = "qwen2" if cfg["architectures"][0].startswith("Qwen2") else "llama"
    tok, ids = tokenizer_files(arch, specials, image_tokens)
    if image_tokens:
        cfg["image_tokens"] = {"first_token_id": ids["<|img_0|>"], "token_count": image_tokens,
                               "begin_token_id": ids["<|image_start|>"], "end_token_id": ids["<|image_end|>"], "grid_size": 4}
    if arch == "llama":
        cfg["bos_token_id"] = ids["<|begin_of_text|>"]
        cfg["eos_token_id"] = [ids["<|end_of_text|>"], ids["<|eot_id|>"]]
    if arch == "qwen2":
        tc = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "add_bos_token": False,
              "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"}
    else:
        tc = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
              "chat_template": "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>{% endfor %}"}

    hf = os.path.join(out, name, "hf")
    os.makedirs(hf, exist_ok=True)
    # A tied output makes the next token echo the last one unless the blocks move the residual
    # stream well away from the input embedding: their output projections get a larger gain.
    weights = random_weights(cfg, gen, biases=arch == "qwen2", gain=4.0 if cfg["tie_word_embeddings"] else 1.0)
    # The reference sees exactly the values the file holds (BF16 rounding included).
    weights = {k: v.to(dtype).to(torch.float32) for k, v in weights.items()}
    write_safetensors(os.path.join(hf, "model.safetensors"), weights, dtype)
    for fname, obj in [("config.json", cfg), ("tokenizer.json", tok), ("tokenizer_config.json", tc)]:
        with open(os.path.join(hf, fname), "w") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False)

    model = Decoder(cfg, weights)
    usable = len(tok["model"]["vocab"])  # ordinary tokens, for prompts
    prompt = torch.randint(0, usable, (24,), generator=gen).tolist()
    prefill = model.forward(model.embed(prompt))

    seq, margins = list(prompt), []
    for _ in range(GREEDY_STEPS):
        logits = model.forward(model.embed(seq))[-1]
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
        seq.append(int(torch.argmax(logits)))

    # Input embeddings replace the token embeddings at positions [start, start+n).
    override_tokens = torch.randint(0, usable, (20,), generator=gen).tolist()
    start, n = 5, 8
    embeds = torch.randn(n, cfg["hidden_size"], generator=gen, dtype=torch.float64)
    x = model.embed(override_tokens).clone()
    x[start : start + n] = embeds
    override = model.forward(x)

    d = os.path.join(out, name)
    write_f32(os.path.join(d, "prefill_logits.f32"), prefill)
    write_f32(os.path.join(d, "override_embeddings.f32"), embeds)
    write_f32(os.path.join(d, "override_logits.f32"), override)
    golden = {
        "vocab": VOCAB,
        "prompt": prompt,
        "greedy": seq[len(prompt):],
        "min_greedy_margin": min(margins),
        "override": {"tokens": override_tokens, "start": start, "count": n},
        "image_tokens": cfg.get("image_tokens"),
    }
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    print(f"{name}: greedy {golden['greedy'][:8]}..., smallest top-2 margin {min(margins):.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    make(args.out, "qwen2", {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 160,
        "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "rope_scaling": {"type": "linear", "factor": 2.0}, "max_position_embeddings": 256,
        "vocab_size": VOCAB, "tie_word_embeddings": True, "bos_token_id": None, "eos_token_id": None,
        "torch_dtype": "float32",
    }, ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_start|>", "<|image_end|>"], 64, torch.float32, 1)
    make(args.out, "llama", {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 96, "intermediate_size": 192,
        "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0, "max_position_embeddings": 256, "vocab_size": VOCAB, "tie_word_embeddings": False,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
        "attention_bias": False, "mlp_bias": False,
        "torch_dtype": "bfloat16",
    }, ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], 0,
        torch.bfloat16, 2)


if __name__ == "__main__":
    main()
