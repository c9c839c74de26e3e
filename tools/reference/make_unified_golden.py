"""Makes the unified model (TokLIP + projector + vocabulary-extended Qwen2) and golden outputs that
llm's engine tests read: understanding logits of a chat with an image, and greedy image
generation under classifier-free guidance, with and without semantic fusion.

The TokLIP half is visiontok/testdata/toklip-tiny.pt (make_toklip_golden.py). The LLM half is
written under OUT/hf as a HuggingFace folder: a small Qwen2 whose vocabulary adds <|image_start|>,
<|image_end|> and one token per VQ code, a two-layer GELU projector (mm_projector.N), and the
image_tokens/projector keys of toklip's converter. The loop mirrors llm/generate.go without a KV
cache, in float64:
  cond   = chatml([user: prompt]) + assistant header + <|image_start|>
  uncond = chatml([user: ""])     + assistant header + <|image_start|>
  each step: mask both logits to the image ids, mix u + s (c - u), take the argmax, feed the id
  to both (its token embedding, plus projector(TokLIP feature of the id) under fusion).
  /usr/bin/python3 tools/reference/make_unified_golden.py --out llm/testdata/unified
"""

import argparse
import json
import os
import subprocess

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from decoder import Decoder
from make_golden import tokenizer_files, write_safetensors, write_f32
from make_toklip_golden import CFG as TOKLIP_CFG
from toklip_ref import TokLIP

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
VISION = os.path.join(ROOT, "visiontok", "testdata")
IMAGE_COUNT = 16384
GUIDANCE = 3.0
LAST = 8  # understanding logits kept, from the end
PROMPTS = ["a red circle in the top left corner", "two objects: a blue square and a star"]


def load_toklip():
    ck = torch.load(os.path.join(VISION, "toklip-tiny.pt"), map_location="cpu")
    sd = {k[len("module."):]: v for k, v in ck["state_dict"].items()}
    with open(os.path.join(VISION, "tokenizer", "tokenizer.json")) as f:
        vocab = len(json.load(f)["model"]["vocab"])
    model = TokLIP(dict(TOKLIP_CFG, vocab=vocab))
    model.load_state_dict(sd)
    return model.double().eval()


def encode(tokenizer_path, texts):
    run = subprocess.run(["node", os.path.join(ROOT, "tools", "tokenizer", "encode.mjs"), tokenizer_path],
                         input=json.dumps(texts), capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


class Projector:
    def __init__(self, weights):
        self.w = weights

    def __call__(self, x):
        x = x @ self.w["mm_projector.0.weight"].T + self.w["mm_projector.0.bias"]
        x = torch.nn.functional.gelu(x)  # exact (erf)
        return x @ self.w["mm_projector.1.weight"].T + self.w["mm_projector.1.bias"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = ap.parse_args().out
    hf = os.path.join(out, "hf")
    os.makedirs(hf, exist_ok=True)
    gen = torch.Generator().manual_seed(11)

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_start|>", "<|image_end|>"]
    tok, ids = tokenizer_files("qwen2", specials, 0)
    first = len(tok["model"]["vocab"]) + len(tok["added_tokens"])
    for i in range(IMAGE_COUNT):  # one added token per VQ code, after the text vocabulary
        tok["added_tokens"].append({"id": first + i, "content": f"<|img_{i}|>", "single_word": False, "lstrip": False,
                                    "rstrip": False, "normalized": False, "special": True})
    vocab = first + IMAGE_COUNT
    toklip = load_toklip()
    width = TOKLIP_CFG["width"]
    grid = TOKLIP_CFG["grid"]
    cfg = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "max_position_embeddings": 512, "vocab_size": vocab, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "image_tokens": {"first_token_id": first, "token_count": IMAGE_COUNT, "begin_token_id": ids["<|image_start|>"],
                         "end_token_id": ids["<|image_end|>"], "grid_size": grid, "fusion": "semantic"},
        "projector": {"depth": 2, "activation": "gelu"},
    }
    h = cfg["hidden_size"]

    def r(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    w = {"model.embed_tokens.weight": r(vocab, h, std=1.0), "model.norm.weight": 1 + r(h, std=0.1),
         "mm_projector.0.weight": r(h, width, std=width ** -0.5), "mm_projector.0.bias": r(h, std=0.1),
         "mm_projector.1.weight": r(h, h, std=h ** -0.5), "mm_projector.1.bias": r(h, std=0.1)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + r(h, std=0.1)
        w[p + "post_attention_layernorm.weight"] = 1 + r(h, std=0.1)
        for name, rows in [("q", h), ("k", 32), ("v", 32)]:
            w[p + f"self_attn.{name}_proj.weight"] = r(rows, h, std=h ** -0.5 * 2)
            w[p + f"self_attn.{name}_proj.bias"] = r(rows, std=0.1)
        w[p + "self_attn.o_proj.weight"] = r(h, h, std=h ** -0.5 * 4)
        w[p + "mlp.gate_proj.weight"] = r(128, h, std=h ** -0.5)
        w[p + "mlp.up_proj.weight"] = r(128, h, std=h ** -0.5)
        w[p + "mlp.down_proj.weight"] = r(h, 128, std=128 ** -0.5 * 4)
    w = {k: v.to(torch.bfloat16).to(torch.float32) for k, v in w.items()}
    write_safetensors(os.path.join(hf, "model.safetensors"), w, torch.bfloat16)
    tc = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "add_bos_token": False,
          "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"}
    for name, obj in [("config.json", cfg), ("tokenizer_config.json", tc)]:
        with open(os.path.join(hf, name), "w") as f:
            json.dump(obj, f, indent=1)
    tok_path = os.path.join(hf, "tokenizer.json")
    with open(tok_path, "w") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))

    lm = Decoder(cfg, w)
    proj = Projector({k: v.double() for k, v in w.items() if k.startswith("mm_projector")})
    trunk = toklip.visual.trunk

    # Understanding: [user: image, text] with the generation prompt; logits of every position.
    img = T.Compose([T.Resize(128, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(128)])(
        Image.open(os.path.join(VISION, "images", "gradient.png")).convert("RGB"))
    x = torch.from_numpy(np.asarray(img).astype(np.float32) / 255.0)
    x = ((x - 0.5) / 0.5).permute(2, 0, 1)[None].double()
    with torch.no_grad():
        vq, _ = trunk.vq.encode(x)
        feats = trunk.features(vq)[0]
    before, after = encode(tok_path, ["<|im_start|>user\n", "What shape is this?<|im_end|>\n<|im_start|>assistant\n"])
    begin, end = ids["<|image_start|>"], ids["<|image_end|>"]
    with torch.no_grad():
        seq = torch.cat([lm.embed(before + [begin]), proj(feats), lm.embed([end] + after)])
        understanding = lm.forward(seq)
    # The last positions: all of them see the image; the whole [tokens x vocab] would be 6.6 MB.
    write_f32(os.path.join(out, "understanding_logits.f32"), understanding[-LAST:])

    # Guided generation, greedy, for each prompt, with and without fusion.
    golden = {"guidance": GUIDANCE, "prompts": PROMPTS, "understanding_tokens": seq.shape[0], "understanding_last": LAST,
              "understanding_image_at": len(before) + 1, "generation": []}
    lo, hi = first, first + IMAGE_COUNT
    for fusion in (True, False):
        for prompt in PROMPTS:
            cond_ids, uncond_ids = encode(tok_path, [
                f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n",
                "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n"])
            cond = lm.embed(cond_ids + [begin])
            uncond = lm.embed(uncond_ids + [begin])
            out_ids, margins = [], []
            with torch.no_grad():
                for step in range(grid * grid):
                    c = lm.forward(cond)[-1].clone()
                    u = lm.forward(uncond)[-1].clone()
                    mixed = u[lo:hi] + GUIDANCE * (c[lo:hi] - u[lo:hi])
                    top = torch.topk(mixed, 2).values
                    margins.append(float(top[0] - top[1]))
                    i = int(torch.argmax(mixed))
                    out_ids.append(i)
                    e = lm.embed([first + i])
                    if fusion:
                        f = trunk.features(torch.tensor([out_ids]))[0, -1:]
                        e = e + proj(f)
                    cond, uncond = torch.cat([cond, e]), torch.cat([uncond, e])
                decoded = trunk.vq.decode(torch.tensor([out_ids]), grid)[0].permute(1, 2, 0)
            rgb = torch.clamp(127.5 * decoded + 128.0, 0, 255).to(torch.uint8).numpy()
            name = f"gen{len(golden['generation'])}"
            with open(os.path.join(out, name + ".decoded.u8"), "wb") as fh:
                fh.write(rgb.tobytes())
            golden["generation"].append({"prompt": prompt, "fusion": fusion, "ids": out_ids,
                                         "smallest_margin": min(margins), "decoded": name + ".decoded.u8"})
            print(f"fusion={fusion} {prompt!r}: {out_ids[:8]}..., smallest margin {min(margins):.3f}")
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    main()
