"""Makes the small TokLIP checkpoint and golden outputs that visiontok's parity tests read.

Writes, under OUT (visiontok/testdata):
  toklip-tiny.pt        an open_clip-style training checkpoint, as the official ones are saved:
                        {"epoch", "name", "state_dict" (keys prefixed "module."), "optimizer"
                        (Adam state after one step), "best_metric" (a numpy float64)}; the model
                        has TokLIP's structure with reduced widths and depths (toklip_ref.py)
  tokenizer/            a small Gemma-format tokenizer.json (SentencePiece BPE, byte fallback)
                        and its tokenizer_config.json (SigLIP2's policy: no BOS, EOS appended)
  images/*.png          preprocessing test images: gradients, edges, noise, odd sizes, portrait
                        and landscape, one smaller than the model's input
  golden.json, *.f32/*.u8/*.i32   what the reference computes from them (see golden.json)

Everything is computed in float64. Needs Debian's python3-torch, python3-torchvision and
python3-pil, and node with tools/tokenizer's npm packages (the HuggingFace tokenizer oracle):
  /usr/bin/python3 tools/reference/make_toklip_golden.py --out visiontok/testdata
"""

import argparse
import json
import os
import string
import struct
import subprocess

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from toklip_ref import TokLIP

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

CFG = {
    "image_size": 128, "grid": 8,
    "vq_ch": 16, "vq_ch_mult": (1, 1, 2, 2, 4), "vq_res_blocks": 1, "vq_z_channels": 32, "vq_groups": 8,
    "width": 64, "depth": 2, "heads": 4, "mlp": int(64 * 3.7362),
    "context": 64, "text_depth": 2,
}

LABELS = ["a red circle", "A blue square!", "the green_triangle", "a small yellow star, in the corner",
          "Two objects: a circle and a square."]


def canonicalize(text):
    """open_clip's canonicalize_text: '_' to space, punctuation removed, lowercase, spaces collapsed."""
    text = text.replace("_", " ").translate(str.maketrans("", "", string.punctuation)).lower()
    return " ".join(text.split()).strip()


LABEL_WORDS = ("a red blue green yellow white black circle square triangle star small large corner center "
               "two objects and the in of top left right bottom picture photo shape color").split()


def make_tokenizer(out, words=LABEL_WORDS):
    """A Gemma-format tokenizer: <pad> <eos> <bos> <unk>, byte tokens, then BPE pieces trained on
    words, with "▁" for spaces, written to OUT/tokenizer/."""
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    seqs = [list("▁" + w) for w in words]
    for ch in sorted({c for s in seqs for c in s}):
        vocab.setdefault(ch, len(vocab))
    merges = []
    while len(merges) < 120:
        counts = {}
        for s in seqs:
            for a, b in zip(s, s[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        (a, b), _ = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab.setdefault(a + b, len(vocab))
        for s in seqs:
            i = 0
            while i < len(s) - 1:
                if s[i] == a and s[i + 1] == b:
                    s[i:i + 2] = [a + b]
                i += 1
    special = lambda i, c: {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(i, c) for c, i in list(vocab.items())[:4]],
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": None, "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                      {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "vocab": vocab, "merges": merges},
    }
    d = os.path.join(out, "tokenizer")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "tokenizer.json")
    with open(path, "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"add_bos_token": False, "add_eos_token": True, "bos_token": "<bos>", "eos_token": "<eos>",
                   "pad_token": "<pad>", "unk_token": "<unk>"}, f, indent=1)
    return path, len(vocab)


def text_ids(tokenizer_path, labels, context):
    """SigLIP2's text input: canonicalize, tokenize (the HuggingFace oracle), append EOS (kept when
    truncating), pad with <pad> (0) to the context length."""
    texts = [canonicalize(t) for t in labels]
    run = subprocess.run(["node", os.path.join(ROOT, "tools", "tokenizer", "encode.mjs"), tokenizer_path],
                         input=json.dumps(texts), capture_output=True, text=True, check=True)
    rows = []
    for ids in json.loads(run.stdout):
        ids = ids[: context - 1] + [1]
        rows.append(ids + [0] * (context - len(ids)))
    return torch.tensor(rows)


def init_weights(model, gen):
    """Random weights at scales that keep activations O(1) through the reduced model."""
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or ".norm" in name and name.endswith("weight") \
                    or "ln_" in name and name.endswith("weight") or name.endswith("norm_out.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 4:  # conv [out, in, kh, kw]
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))
            elif p.dim() == 2 and "embedding" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[1]))
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    with torch.no_grad():
        model.logit_scale.fill_(np.log(10.0))
        model.logit_bias.fill_(-10.0)


def test_images(out, gen):
    """PNG images for the preprocessing test, and the model's inputs."""
    d = os.path.join(out, "images")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)
    imgs = {}
    h, w = 150, 200  # landscape gradient
    y, x = np.mgrid[0:h, 0:w]
    imgs["gradient"] = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1)
    h, w = 257, 131  # portrait, hard edges: stripes and a checkerboard
    y, x = np.mgrid[0:h, 0:w]
    imgs["edges"] = np.stack([((x // 7) % 2) * 255, ((y // 5) % 2) * 255, (((x // 16) + (y // 16)) % 2) * 200 + 30], -1)
    imgs["noise"] = rng.integers(0, 256, (199, 301, 3))  # odd sizes, landscape
    h, w = 90, 60  # smaller than the input: bicubic upscaling
    y, x = np.mgrid[0:h, 0:w]
    imgs["small"] = np.stack([(x * 4) % 256, (y * 3) % 256, ((x - 30) ** 2 + (y - 45) ** 2 < 400) * 255], -1)
    h, w = 128, 128  # already the input size
    y, x = np.mgrid[0:h, 0:w]
    imgs["exact"] = np.stack([x * 2, y * 2, 255 - x - y // 2], -1)
    paths = {}
    for name, a in imgs.items():
        p = os.path.join(d, name + ".png")
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB").save(p)
        paths[name] = p
    return paths


def write(path, array, dtype):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(array, dtype=dtype).tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(3)

    tok_path, vocab = make_tokenizer(out)
    cfg = dict(CFG, vocab=vocab)
    model = TokLIP(cfg)
    init_weights(model, gen)
    trunk = model.visual.trunk
    # Spread the decoder's output over [-1, 1] so that the pixel comparison means something.
    with torch.no_grad():
        probe = trunk.vq.decode(torch.randint(0, 16384, (1, cfg["grid"] ** 2), generator=gen), cfg["grid"])
        trunk.vq.decoder.conv_out.weight.mul_(0.6 / probe.std())
        trunk.vq.decoder.conv_out.bias.zero_()

    # The checkpoint, saved like open_clip's training loop saves one.
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if n.startswith("visual.trunk.") and ".vq." not in n], lr=1e-9)
    loss = trunk.features(torch.randint(0, 16384, (1, 4), generator=gen)).sum()
    loss.backward()
    opt.step()  # negligible lr: the weights stay what the goldens use, the optimizer gets real state
    opt.zero_grad()
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 7, "name": "toklip-tiny", "state_dict": state, "optimizer": opt.state_dict(),
                "best_metric": np.float64(0.625)}, os.path.join(out, "toklip-tiny.pt"))

    model = model.double().eval()
    trunk = model.visual.trunk
    paths = test_images(out, gen)
    transform = T.Compose([T.Resize(cfg["image_size"], interpolation=T.InterpolationMode.BICUBIC),
                           T.CenterCrop(cfg["image_size"])])
    golden = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}, "images": {}}
    with torch.no_grad():
        for name, p in paths.items():
            img = transform(Image.open(p).convert("RGB"))
            pixels = np.asarray(img)  # [S, S, 3] uint8, after resize and crop
            x = torch.from_numpy(pixels.astype(np.float32) / 255.0)
            x = ((x - 0.5) / 0.5).permute(2, 0, 1)[None].double()  # ToTensor, Normalize(0.5, 0.5)
            ids, d = trunk.vq.encode(x)
            # The margin between the best and second-best code, per position: near-ties may flip.
            top2 = torch.topk(-d, 2, dim=1).values
            margin = (top2[:, 0] - top2[:, 1]).numpy()
            feats = trunk.features(ids)
            pooled = trunk.attn_pool(feats)
            decoded = trunk.vq.decode(ids, cfg["grid"])[0].permute(1, 2, 0)
            rgb = torch.clamp(127.5 * decoded + 128.0, 0, 255).to(torch.uint8).numpy()
            write(os.path.join(out, f"{name}.pre.u8"), pixels, np.uint8)
            write(os.path.join(out, f"{name}.ids.i32"), ids[0].numpy(), np.int32)
            write(os.path.join(out, f"{name}.features.f32"), feats[0].numpy(), np.float32)
            write(os.path.join(out, f"{name}.pooled.f32"), pooled[0].numpy(), np.float32)
            write(os.path.join(out, f"{name}.decoded.u8"), rgb, np.uint8)
            golden["images"][name] = {"png": f"images/{name}.png", "smallest_margin": float(margin.min()),
                                      "near_ties": int((margin < 1e-6).sum())}
        ids = text_ids(tok_path, LABELS, cfg["context"])
        text = model.text(ids)
        write(os.path.join(out, "text.ids.i32"), ids.numpy(), np.int32)
        write(os.path.join(out, "text.embeddings.f32"), text.numpy(), np.float32)
        # Zero-shot: 100 * cosine, softmax over the labels, for each image.
        scores = {}
        for name in paths:
            pooled = torch.from_numpy(np.fromfile(os.path.join(out, f"{name}.pooled.f32"), dtype=np.float32)).double()
            cos = torch.nn.functional.normalize(text, dim=-1) @ torch.nn.functional.normalize(pooled, dim=0)
            scores[name] = torch.softmax(100 * cos, 0).tolist()
    golden["labels"] = LABELS
    golden["canonical"] = [canonicalize(t) for t in LABELS]
    golden["zero_shot"] = scores
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    for name, g in golden["images"].items():
        print(f"{name}: smallest top-2 margin {g['smallest_margin']:.2e}, near-ties {g['near_ties']}")


if __name__ == "__main__":
    main()
