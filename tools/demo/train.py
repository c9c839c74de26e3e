"""Trains toklip's demo model, end to end, on scenes drawn by the Go package demo:

  1. LlamaGen's VQ model, reduced (64 px -> 8 x 8 ids from a 512 x 8 codebook): reconstruction,
     codebook and commitment losses.
  2. TokLIP's semantic encoder, reduced (vq_table/vq_mapping, causal ViT, attention-pool head) and
     a small SigLIP2-structured text tower, trained contrastively (SigLIP's sigmoid loss) on the
     VQ ids of the scenes and their captions. The VQ model is frozen.
  3. A small Qwen2 with the extended vocabulary and a projector, on chats in both directions:
     questions about a scene (its TokLIP features spliced in), and caption -> image ids with
     semantic fusion, the condition dropped one time in ten (for classifier-free guidance);
     then a second, shorter pass at a lower rate with more questions.

Writes WORK/toklip-demo.pt (an open_clip-style TokLIP checkpoint, as the official ones) and
WORK/hf/ (a HuggingFace Qwen2 folder) for toklip's converters; `make demo-model` runs this and
converts. Fixed seeds; each stage's result is kept in WORK (stage-*.pt) and reused by a rerun, so
delete a stage's file (and those after it) to train it again. About 77 minutes on 2 cores
(measured: scenes and VQ 9, TokLIP 14, LLM 35 + 19). Debian's torch:
  /usr/bin/python3 tools/demo/train.py --work .demo-work
"""

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import GRID, TOKLIP  # noqa: E402
from make_golden import write_safetensors  # noqa: E402
from make_toklip_golden import text_ids  # noqa: E402
from models import LM, init_lm, toklip, vq_forward  # noqa: E402

SEED = 1
TRAIN_SCENES = 20000


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def to_input(pixels):
    """uint8 [n, 64, 64, 3] -> [-1, 1] [n, 3, 64, 64] (TokLIP's normalization, mean = std = 0.5)."""
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def lr_at(step, steps, peak, warmup=100):
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))))


def train_vq(model, pixels, steps, batch=32):
    vq = model.visual.trunk.vq
    params = [p for n, p in vq.named_parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.9))
    rng = np.random.default_rng(SEED)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, 1e-3)
        x = to_input(pixels[rng.integers(0, len(pixels), batch)])
        rec, cb, commit, ids = vq_forward(vq, x)
        rec_loss = F.mse_loss(rec, x) + F.l1_loss(rec, x)
        loss = rec_loss + cb + 0.25 * commit
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"vq step {step}: reconstruction {rec_loss.item():.4f} codebook {cb.item():.4f} codes used {ids.unique().numel()}")


@torch.no_grad()
def vq_ids(model, pixels, batch=256):
    vq = model.visual.trunk.vq
    out = []
    for i in range(0, len(pixels), batch):
        ids, _ = vq.encode(to_input(pixels[i:i + batch]))
        out.append(ids)
    return torch.cat(out)


@torch.no_grad()
def psnr(model, pixels):
    vq = model.visual.trunk.vq
    x = to_input(pixels)
    ids, _ = vq.encode(x)
    rec = vq.decode(ids, GRID).clamp(-1, 1)
    mse = ((rec - x) ** 2).mean().item() / 4  # in [0, 1] units
    return 10 * math.log10(1 / mse)


def pooled(model, ids):
    trunk = model.visual.trunk
    return F.normalize(trunk.attn_pool(trunk.features(ids)), dim=-1)


def train_toklip(model, ids, captions, text_table, steps, batch=64, peak=2e-3):
    """SigLIP's loss: every image against every caption in the batch; pairs with the same caption
    (the same attributes) count as positives."""
    trunk, text = model.visual.trunk, model.text
    params = [p for n, p in model.named_parameters() if not n.startswith("visual.trunk.vq.") and "patch_embed" not in n]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    rng = np.random.default_rng(SEED + 1)
    caption_index = {c: i for i, c in enumerate(sorted(set(captions)))}
    cap_ids = torch.tensor([caption_index[c] for c in captions])
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, peak)
        pick = torch.from_numpy(rng.integers(0, len(ids), batch))
        img = pooled(model, ids[pick])
        txt = F.normalize(text(text_table[cap_ids[pick]]), dim=-1)
        logits = img @ txt.T * model.logit_scale.exp() + model.logit_bias
        labels = 2 * (cap_ids[pick][:, None] == cap_ids[pick][None, :]).float() - 1
        loss = -F.logsigmoid(labels * logits).sum() / batch
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"toklip step {step}: loss {loss.item():.4f} scale {model.logit_scale.exp().item():.1f}")


@torch.no_grad()
def zero_shot(model, ids, captions, all_captions, text_table_all):
    """Top-1 retrieval of each image's caption among every caption of the world."""
    txt = F.normalize(model.text(text_table_all), dim=-1)
    img = pooled(model, ids)
    best = (img @ txt.T).argmax(1)
    return sum(all_captions[b] == c for b, c in zip(best.tolist(), captions)) / len(captions)


@torch.no_grad()
def features(model, ids, batch=256):
    trunk = model.visual.trunk
    return torch.cat([trunk.features(ids[i:i + batch]) for i in range(0, len(ids), batch)]).half()


class Chats:
    """Builds the LLM's training sequences, tokenized exactly as toklip's engine renders chats
    (chatml; each template piece and each message text tokenized on its own)."""

    def __init__(self, tok_path, tok):
        self.tok = tok
        texts = ["<|im_start|>user\n", "<|im_end|>\n", "<|im_start|>assistant\n", "<|im_end|>\n<|im_start|>assistant\n"]
        texts += common.all_texts()
        self.ids = dict(zip(texts, common.encode(tok_path, texts)))

    def t(self, text):
        return self.ids[text]

    def understanding(self, m, rng):
        kind = rng.choice(list(common.QUESTIONS))
        q = rng.choice(common.QUESTIONS[kind])
        tok = self.tok
        prompt = [(x, 0) for x in self.t("<|im_start|>user\n") + [tok["<|image_start|>"]]]
        prompt += [("feature", i) for i in range(GRID * GRID)]
        prompt += [(x, 0) for x in [tok["<|image_end|>"]] + self.t(q) + self.t("<|im_end|>\n<|im_start|>assistant\n")]
        target = self.t(common.answer(kind, m)) + [tok["<|im_end|>"]]
        return prompt, target

    def generation(self, m, rng, draw_in_chat):
        tok = self.tok
        if draw_in_chat:
            user = self.t(rng.choice(common.DRAW).format(m["caption"]))
        elif rng.random() < 0.1:  # the condition dropped: an empty user message, as the engine's uncond branch
            user = []
        else:
            user = self.t(m["caption"])
        prompt = self.t("<|im_start|>user\n") + user + self.t("<|im_end|>\n") + self.t("<|im_start|>assistant\n")
        return [(x, 0) for x in prompt], "image"


def lm_batch(chats, batch_scenes, ids, feats, rng, mix):
    """Right-padded token ids, features, replace/fuse masks and loss targets (-100: no loss).
    mix = (u, d): a row is a question about a scene below u, a drawing asked in a chat above d,
    a caption -> image row between."""
    tok = chats.tok
    rows = []
    for m, sid in batch_scenes:
        r = rng.random()
        if r < mix[0]:
            prompt, target = chats.understanding(m, rng)
            seq = prompt + [(x, 0) for x in target]
            tgt_from = len(prompt) - 1
            rows.append((seq, tgt_from, sid, "understand"))
        else:
            prompt, _ = chats.generation(m, rng, draw_in_chat=r > mix[1])
            image = [(tok["<|image_start|>"], 0)] + [("id", i) for i in range(GRID * GRID)]
            seq = prompt + image + [(tok["<|image_end|>"], 0), (tok["<|im_end|>"], 0)]
            rows.append((seq, len(prompt) - 1, sid, "generate"))
    n = max(len(r[0]) for r in rows)
    B = len(rows)
    tokens = torch.zeros(B, n, dtype=torch.long)
    targets = torch.full((B, n), -100, dtype=torch.long)
    fe = torch.zeros(B, n, feats.shape[-1])
    replace = torch.zeros(B, n, dtype=torch.bool)
    fuse = torch.zeros(B, n, dtype=torch.bool)
    first = tok["first_image"]
    for b, (seq, tgt_from, sid, kind) in enumerate(rows):
        for i, (x, k) in enumerate(seq):
            if x == "feature":
                replace[b, i] = True
                fe[b, i] = feats[sid, k].float()
            elif x == "id":
                tokens[b, i] = first + ids[sid, k]
                fuse[b, i] = True
                fe[b, i] = feats[sid, k].float()
            else:
                tokens[b, i] = x
        for i in range(tgt_from, len(seq) - 1):
            targets[b, i] = tokens[b, i + 1]
    return tokens, fe, replace, fuse, targets


def train_lm(lm, chats, meta, ids, feats, steps, resume_path, peak, mix, seed, batch=32):
    """Saves its whole state to resume_path every 300 steps, so an interrupted run resumes there
    and ends with the same weights as an uninterrupted one."""
    decay = [p for n, p in lm.named_parameters() if p.dim() == 2]
    rest = [p for n, p in lm.named_parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95))
    rng = random.Random(seed)
    first = 0
    if os.path.exists(resume_path):
        state = torch.load(resume_path)
        lm.load_state_dict(state["lm"])
        opt.load_state_dict(state["opt"])
        rng.setstate(state["rng"])
        first = state["step"]
        log(f"lm: resuming at step {first}")
    for step in range(first, steps):
        if step > first and step % 300 == 0:
            torch.save({"lm": lm.state_dict(), "opt": opt.state_dict(), "rng": rng.getstate(), "step": step},
                       resume_path + ".tmp")
            os.replace(resume_path + ".tmp", resume_path)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, peak)
        pick = [rng.randrange(len(meta)) for _ in range(batch)]
        tokens, fe, replace, fuse, targets = lm_batch(chats, [(meta[i], i) for i in pick], ids, feats, rng, mix)
        logits = lm(lm.embed(tokens, fe, replace, fuse))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"lm step {step}: loss {loss.item():.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=".demo-work")
    ap.add_argument("--vq-steps", type=int, default=1200)
    ap.add_argument("--toklip-steps", type=int, default=1500)
    ap.add_argument("--lm-steps", type=int, default=2400)
    ap.add_argument("--answer-steps", type=int, default=1200)
    args = ap.parse_args()
    torch.set_num_threads(2)
    common.seed_all(SEED)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    start = time.time()

    pixels, meta = common.scenes("train", TRAIN_SCENES, SEED, work)
    held_pixels, held_meta = common.scenes("heldout", 500, SEED + 100, work)
    hf = os.path.join(work, "hf")
    os.makedirs(hf, exist_ok=True)
    tok_path = os.path.join(hf, "tokenizer.json")
    tok = common.llm_tokenizer(tok_path)
    text_tok_path, text_vocab = common.text_tokenizer(work)

    model = toklip(TOKLIP, text_vocab)
    vq_path = os.path.join(work, "stage-vq.pt")
    if os.path.exists(vq_path):
        model.visual.trunk.vq.load_state_dict(torch.load(vq_path))
    else:
        train_vq(model, pixels, args.vq_steps)
        torch.save(model.visual.trunk.vq.state_dict(), vq_path)
    model.eval()
    log(f"VQ: held-out PSNR {psnr(model, held_pixels):.2f} dB")
    ids = vq_ids(model, pixels)
    held_ids = vq_ids(model, held_pixels)
    log(f"VQ: {ids.unique().numel()} of {common.CODEBOOK} codes used on the training scenes")

    captions = [m["caption"] for m in meta]
    all_captions = sorted({f"a {s} {c} {sh} in the {p}" for s in common.SIZES for c in common.COLORS
                           for sh in common.SHAPES for p in common.POSITIONS})
    text_table_all = text_ids(text_tok_path, all_captions, TOKLIP["context"])
    index = {c: i for i, c in enumerate(all_captions)}
    text_table = text_table_all  # rows in sorted-caption order, as train_toklip indexes them
    toklip_path = os.path.join(work, "stage-toklip.pt")
    if os.path.exists(toklip_path):
        model.load_state_dict(torch.load(toklip_path))
    else:
        model.train()
        train_toklip(model, ids, captions, text_table_subset(text_table_all, index, captions), args.toklip_steps)
        torch.save(model.state_dict(), toklip_path)
    model.eval()
    log(f"TokLIP: zero-shot caption retrieval on held-out scenes {100 * zero_shot(model, held_ids, [m['caption'] for m in held_meta], all_captions, text_table_all):.1f}%")
    feats = features(model, ids)

    lm = LM(common.LM, tok["vocab"], TOKLIP["width"])
    init_lm(lm)
    # Both directions, then a shorter second pass at a lower rate that asks more questions, on
    # scenes neither TokLIP nor the first pass saw: after the first pass, colors of small shapes
    # are the answers' weak point (91% on held-out scenes, 95% on training scenes).
    chats = Chats(tok_path, tok)
    stages = [("stage-lm.pt", args.lm_steps, 1.5e-3, (0.45, 0.9), SEED + 2, SEED),
              ("stage-lm-answers.pt", args.answer_steps, 5e-4, (0.65, 0.95), SEED + 3, SEED + 10)]
    for name, steps, peak, mix, seed, scene_seed in stages:
        path = os.path.join(work, name)
        if os.path.exists(path):
            lm.load_state_dict(torch.load(path))
            continue
        if scene_seed != SEED:
            pixels, meta = common.scenes("train", TRAIN_SCENES, scene_seed, work)
            ids = vq_ids(model, pixels)
            feats = features(model, ids)
        train_lm(lm, chats, meta, ids, feats, steps, path + ".resume", peak, mix, seed)
        torch.save(lm.state_dict(), path)
        os.remove(path + ".resume")

    export(model, lm, tok, work, hf)
    log(f"trained in {(time.time() - start) / 60:.1f} minutes")


def text_table_subset(table, index, captions):
    """The text rows in the order train_toklip numbers captions: sorted distinct training captions."""
    return table[[index[c] for c in sorted(set(captions))]]


def export(model, lm, tok, work, hf):
    """The TokLIP checkpoint in open_clip's layout, and the LLM as a HuggingFace folder."""
    torch.save(lm.state_dict(), os.path.join(work, "lm.pt"))  # the weights evaluate.py runs
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 1, "name": "toklip-demo", "state_dict": state}, os.path.join(work, "toklip-demo.pt"))
    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", **common.LM, "vocab_size": tok["vocab"],
           "tie_word_embeddings": True, "torch_dtype": "float32",
           "image_tokens": {"first_token_id": tok["first_image"], "token_count": common.CODEBOOK,
                            "begin_token_id": tok["<|image_start|>"], "end_token_id": tok["<|image_end|>"],
                            "grid_size": GRID, "fusion": "semantic"},
           "projector": {"depth": 2, "activation": "gelu"}}
    tc = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "add_bos_token": False,
          "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}
    for name, obj in [("config.json", cfg), ("tokenizer_config.json", tc)]:
        with open(os.path.join(hf, name), "w") as f:
            json.dump(obj, f, indent=1)
    write_safetensors(os.path.join(hf, "model.safetensors"), lm.hf_state(), torch.float32)


if __name__ == "__main__":
    main()
