"""What the demo recipe's stages share: the scenes (drawn by the Go package demo, through
tools/demo/scenes), the chat texts the model learns, the two tokenizers, and the model shapes."""

import json
import os
import random
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))

from make_golden import REGEX, train_bpe  # noqa: E402

SHAPES = ["circle", "square", "triangle", "star"]
COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
POSITIONS = ["top left corner", "top right corner", "bottom left corner", "bottom right corner", "center"]
SIZES = ["small", "large"]

GRID = 8
IMAGE_SIZE = 64
CODEBOOK = 512

TOKLIP = {
    "image_size": IMAGE_SIZE, "grid": GRID,
    "vq_ch": 16, "vq_ch_mult": (1, 2, 2, 4), "vq_res_blocks": 1, "vq_z_channels": 32, "vq_groups": 8,
    "width": 128, "depth": 4, "heads": 4, "mlp": 512,
    "context": 16, "text_depth": 2, "codebook": CODEBOOK,
}

LM = {"hidden_size": 256, "intermediate_size": 704, "num_hidden_layers": 4, "num_attention_heads": 4,
      "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 512}

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_start|>", "<|image_end|>"]

# Understanding: questions about a scene and how each is answered.
QUESTIONS = {
    "describe": ["Describe the image.", "What is in this picture?", "What do you see?"],
    "shape": ["What shape is it?", "Which shape is shown?"],
    "color": ["What color is the shape?", "What color is it?"],
    "position": ["Where is the shape?", "Where is it?"],
    "size": ["Is the shape small or large?", "How big is it?"],
}
DRAW = ["Draw {}.", "Make a picture of {}.", "Show me {}."]


def scenes(split, n, seed, work):
    """n scenes of a split from the Go renderer: uint8 pixels [n, 64, 64, 3] and their attributes."""
    prefix = os.path.join(work, f"{split}-{n}-{seed}")
    if not os.path.exists(prefix + ".jsonl"):
        subprocess.run(["go", "run", "./tools/demo/scenes", "-split", split, "-n", str(n), "-seed", str(seed),
                        "-o", prefix], cwd=ROOT, check=True)
    pixels = np.fromfile(prefix + ".u8", dtype=np.uint8).reshape(n, IMAGE_SIZE, IMAGE_SIZE, 3)
    with open(prefix + ".jsonl") as f:
        meta = [json.loads(line) for line in f]
    return pixels, meta


def sentence(text):
    return text[0].upper() + text[1:] + "."


def answer(kind, m):
    """The answer to a question of this kind about the scene m (its attributes)."""
    if kind == "describe":
        return sentence(m["caption"])
    if kind == "shape":
        return sentence("a " + SHAPES[m["shape"]])
    if kind == "color":
        return sentence(COLORS[m["color"]])
    if kind == "position":
        return sentence("in the " + POSITIONS[m["position"]])
    return sentence(SIZES[m["size"]])


def all_texts():
    """Every text the chats contain, for training the tokenizer's merges."""
    texts = ["user", "assistant", "system"]
    for qs in QUESTIONS.values():
        texts += qs
    for size, s in enumerate(SIZES):
        for color, c in enumerate(COLORS):
            for shape, sh in enumerate(SHAPES):
                for pos, p in enumerate(POSITIONS):
                    cap = f"a {s} {c} {sh} in the {p}"
                    m = {"caption": cap, "shape": shape, "color": color, "position": pos, "size": size}
                    texts += [cap] + [d.format(cap) for d in DRAW] + [answer(k, m) for k in QUESTIONS]
    return list(dict.fromkeys(texts))


def llm_tokenizer(path):
    """A Qwen-style byte-level BPE tokenizer.json with merges learned on the demo's texts, the chat
    and image special tokens, and one added token per VQ code. Returns the ids that matter."""
    vocab, merges = train_bpe(" ".join(all_texts()).replace(".", " .").replace("?", " ?"), 300)
    added = []
    for name in SPECIALS + [f"<|img_{i}|>" for i in range(CODEBOOK)]:
        added.append({"id": len(vocab) + len(added), "content": name, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": REGEX["qwen2"]}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    with open(path, "w") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))
    ids = {a["content"]: a["id"] for a in added}
    return {"vocab": len(vocab) + len(added), "first_image": ids["<|img_0|>"], **{k: ids[k] for k in SPECIALS}}


def text_tokenizer(folder):
    """The text tower's tokenizer: SigLIP2's format (Gemma SentencePiece BPE, byte fallback; no BOS,
    EOS appended, padded with <pad>), with pieces learned on the captions."""
    from make_toklip_golden import make_tokenizer
    words = sorted({w for t in all_texts() for w in t.lower().replace(".", "").replace("?", "").split()})
    return make_tokenizer(folder, words)


def encode(tokenizer_path, texts):
    """Token ids of each text by HuggingFace's tokenizer (the oracle toklip's tokenizer matches)."""
    run = subprocess.run(["node", os.path.join(ROOT, "tools", "tokenizer", "encode.mjs"), tokenizer_path],
                         input=json.dumps(texts), capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def seed_all(seed):
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
