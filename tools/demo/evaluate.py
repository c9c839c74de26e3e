"""The demo model's evaluation in PyTorch, on the weights train.py wrote: greedy answers to the
evaluation question about each scene of the understanding sets, greedy guided drawings (semantic
fusion) of each caption of the generation sets, following toklip's engine step for step (with a
KV cache, in batches of 50). Writes what it produced into OUT; `toklip eval-demo -score OUT`
scores it with the same readers as the Go engine's run, so the two are compared on equal terms.
  /usr/bin/python3 tools/demo/evaluate.py --work .demo-work --out .demo-work/eval-pytorch
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import GRID, ROOT, TOKLIP  # noqa: E402
from make_golden import bytes_to_unicode  # noqa: E402
from models import LM, toklip  # noqa: E402
from train import to_input  # noqa: E402

GUIDANCE = 3.0  # demo/evaluate.Guidance
BATCH = 50


class Model:
    def __init__(self, work):
        with open(os.path.join(work, "hf", "config.json")) as f:
            self.cfg = json.load(f)
        it = self.cfg["image_tokens"]
        self.first, self.count = it["first_token_id"], it["token_count"]
        self.begin, self.end = it["begin_token_id"], it["end_token_id"]
        text_vocab = len(json.load(open(os.path.join(work, "tokenizer", "tokenizer.json")))["model"]["vocab"])
        self.toklip = toklip(TOKLIP, text_vocab)
        self.toklip.load_state_dict(torch.load(os.path.join(work, "stage-toklip.pt")))
        self.toklip.eval()
        self.lm = LM(common.LM, self.cfg["vocab_size"], TOKLIP["width"])
        self.lm.load_state_dict(torch.load(os.path.join(work, "lm.pt")))
        self.lm.eval()
        self.tok_path = os.path.join(work, "hf", "tokenizer.json")
        tok = json.load(open(self.tok_path))
        self.pieces = {i: p for p, i in tok["model"]["vocab"].items()}
        self.specials = {a["id"]: a["content"] for a in tok["added_tokens"]}
        self.u2b = {u: b for b, u in bytes_to_unicode().items()}
        self.im_end = next(i for i, s in self.specials.items() if s == "<|im_end|>")
        self.stops = {i for i, s in self.specials.items() if s in ("<|im_end|>", "<|endoftext|>")}

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            if i in self.specials:
                out += self.specials[i].encode()
            else:
                out += bytes(self.u2b[c] for c in self.pieces[i])
        return out.decode("utf-8", errors="replace")

    def embed(self, ids):
        return self.lm.embed_tokens(torch.tensor(ids))


@torch.no_grad()
def describe(model, pixels, pieces, max_tokens=32):
    """Greedy answers for a batch of scenes (the prompts have one length: no padding)."""
    trunk = model.toklip.visual.trunk
    ids, _ = trunk.vq.encode(to_input(pixels))
    feats = trunk.features(ids)
    before, question, after = pieces
    b = len(pixels)
    head, tail = model.embed(before + [model.begin]), model.embed([model.end] + question + after)
    x = torch.cat([head.expand(b, -1, -1), model.lm.project(feats), tail.expand(b, -1, -1)], dim=1)
    logits, cache = model.lm(x, cache=[])
    out, done = [[] for _ in range(b)], [False] * b
    for _ in range(max_tokens):
        last = logits[:, -1].clone()
        last[:, model.first:] = float("-inf")  # text only: no image ids, no image opened
        last[:, [model.begin, model.end]] = float("-inf")
        tokens = last.argmax(1).tolist()
        for r, t in enumerate(tokens):
            if not done[r]:
                if t in model.stops:
                    done[r] = True
                else:
                    out[r].append(t)
        if all(done):
            break
        logits, cache = model.lm(model.embed(tokens)[:, None], cache=cache)
    return [model.decode(o) for o in out]


@torch.no_grad()
def draw(model, conds, uncond):
    """Greedy guided drawings of a batch of prompts: conditional and unconditional rows in one
    left-padded batch, the same id fed to both, its projected TokLIP feature added (fusion)."""
    trunk = model.toklip.visual.trunk
    b = len(conds)
    rows = [c + [model.begin] for c in conds] + [uncond + [model.begin]] * b
    n = max(len(r) for r in rows)
    pad = torch.tensor([n - len(r) for r in rows])
    x = torch.zeros(2 * b, n, model.lm.c["hidden_size"])
    for i, r in enumerate(rows):
        x[i, n - len(r):] = model.embed(r)
    logits, cache = model.lm(x, cache=[], pad=pad)
    lo, hi = model.first, model.first + model.count
    ids = torch.zeros(b, 0, dtype=torch.long)
    for step in range(GRID * GRID):
        c, u = logits[:b, -1, lo:hi], logits[b:, -1, lo:hi]
        ids = torch.cat([ids, (u + GUIDANCE * (c - u)).argmax(1)[:, None]], dim=1)
        if step == GRID * GRID - 1:
            break
        e = model.lm.embed_tokens(lo + ids[:, -1]) + model.lm.project(trunk.features(ids)[:, -1])
        logits, cache = model.lm(torch.cat([e, e])[:, None], cache=cache, pad=pad)
    rgb = trunk.vq.decode(ids, GRID).permute(0, 2, 3, 1)
    return torch.clamp(127.5 * rgb + 128.0, 0, 255).to(torch.uint8).numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=".demo-work")
    ap.add_argument("--out", default=".demo-work/eval-pytorch")
    ap.add_argument("--limit", type=int, default=0, help="only the first N of each set (a smoke test; not scorable)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    sets_dir = os.path.join(args.work, "eval-sets")
    subprocess.run(["go", "run", "./tools/demo/scenes", "-eval", os.path.abspath(sets_dir)], cwd=ROOT, check=True)
    manifest = json.load(open(os.path.join(sets_dir, "eval.json")))
    model = Model(args.work)
    texts = ["<|im_start|>user\n", manifest["question"], "<|im_end|>\n", "<|im_start|>assistant\n"]
    enc = dict(zip(texts, common.encode(model.tok_path, texts)))
    start = time.time()
    for s in manifest["sets"]:
        n = s["n"]
        count = min(n, args.limit) if args.limit else n
        pixels = np.fromfile(os.path.join(sets_dir, s["name"] + ".u8"), dtype=np.uint8).reshape(n, 64, 64, 3)
        meta = [json.loads(line) for line in open(os.path.join(sets_dir, s["name"] + ".jsonl"))]
        if s["task"] == "understanding":
            pieces = (enc["<|im_start|>user\n"], enc[manifest["question"]], enc["<|im_end|>\n"] + enc["<|im_start|>assistant\n"])
            with open(os.path.join(args.out, s["name"] + ".answers.jsonl"), "w") as f:
                for i in range(0, count, BATCH):
                    for a in describe(model, pixels[i:min(count, i + BATCH)], pieces):
                        f.write(json.dumps({"answer": a}) + "\n")
        else:
            captions = [m["caption"] for m in meta]
            cap_ids = common.encode(model.tok_path, captions)
            head, tail = enc["<|im_start|>user\n"], enc["<|im_end|>\n"] + enc["<|im_start|>assistant\n"]
            with open(os.path.join(args.out, s["name"] + ".generated.u8"), "wb") as f:
                for i in range(0, count, BATCH):
                    conds = [head + c + tail for c in cap_ids[i:min(count, i + BATCH)]]
                    f.write(draw(model, conds, head + tail).tobytes())
        print(f"{s['name']}: {count} done, {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
