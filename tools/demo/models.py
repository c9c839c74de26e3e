"""The demo model's trainable parts in PyTorch: the LLM (Qwen2's structure, HuggingFace names) with
its projector, and the training forward of LlamaGen's VQ model. TokLIP itself is
tools/reference/toklip_ref.py, the same module the parity goldens come from."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import common  # noqa: F401  (puts tools/reference on the path)
from toklip_ref import TokLIP, attention


def toklip(cfg, vocab):
    """A TokLIP of the reference structure with the demo's codebook size."""
    model = TokLIP(dict(cfg, vocab=vocab))
    vq = model.visual.trunk.vq
    dim = vq.quantize.embedding.weight.shape[1]
    vq.quantize.embedding = nn.Embedding(cfg["codebook"], dim)
    return model


def vq_forward(vq, x):
    """LlamaGen's training pass: encode, quantize to the nearest l2-normalized code (straight-through
    gradient), decode. Returns the reconstruction, the codebook and commitment losses, the ids."""
    z = vq.quant_conv(vq.encoder(x))
    b, c, h, w = z.shape
    zn = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, c), dim=-1)
    codes = vq.quantize.codebook()
    ids = (zn @ codes.T).argmax(1)  # nearest by cosine = nearest by distance for unit vectors
    zq = codes[ids]
    codebook_loss = F.mse_loss(zq, zn.detach())
    commit_loss = F.mse_loss(zn, zq.detach())
    st = (zn + (zq - zn).detach()).reshape(b, h, w, c).permute(0, 3, 1, 2)
    return vq.decoder(vq.post_quant_conv(st)), codebook_loss, commit_loss, ids.reshape(b, h * w)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(n)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, self.heads, self.kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.dim = h // self.heads
        self.q_proj = nn.Linear(h, self.heads * self.dim)
        self.k_proj = nn.Linear(h, self.kv * self.dim)
        self.v_proj = nn.Linear(h, self.kv * self.dim)
        self.o_proj = nn.Linear(self.heads * self.dim, h, bias=False)

    def forward(self, x, cos, sin, mask, past=None):
        """past: this layer's cached (k, v) of earlier positions, or None. Returns the output and
        the cache extended with x's positions."""
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.heads, self.dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.kv, self.dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.kv, self.dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        g = self.heads // self.kv
        out = attention(q, k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1), mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1)), (k, v)


def rotate(t, cos, sin):
    half = t.shape[-1] // 2
    a, b = t[..., :half], t[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, f = c["hidden_size"], c["intermediate_size"]
        self.input_layernorm = RMSNorm(h, c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(h, c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.mlp = nn.Module()
        self.mlp.gate_proj, self.mlp.up_proj = nn.Linear(h, f, bias=False), nn.Linear(h, f, bias=False)
        self.mlp.down_proj = nn.Linear(f, h, bias=False)

    def forward(self, x, cos, sin, mask, past=None):
        a, kv = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + a
        h = self.post_attention_layernorm(x)
        return x + self.mlp.down_proj(F.silu(self.mlp.gate_proj(h)) * self.mlp.up_proj(h)), kv


class LM(nn.Module):
    """Qwen2 with tied embeddings, and the projector from TokLIP features to input embeddings."""

    def __init__(self, c, vocab, feature_width):
        super().__init__()
        h = c["hidden_size"]
        self.c = c
        self.embed_tokens = nn.Embedding(vocab, h)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(h, c["rms_norm_eps"])
        self.mm_projector = nn.ModuleList([nn.Linear(feature_width, h), nn.Linear(h, h)])
        nn.init.normal_(self.embed_tokens.weight, std=0.02)

    def project(self, feats):
        return self.mm_projector[1](F.gelu(self.mm_projector[0](feats)))  # exact (erf) GELU

    def embed(self, ids, feats, replace, fuse):
        """Input embeddings: a token's row; projected features where replace (an image read);
        a token's row plus its projected feature where fuse (an image id drawn, under fusion)."""
        e = self.embed_tokens(ids)
        if feats is None:
            return e
        p = self.project(feats)
        keep = (~replace).unsqueeze(-1).to(e.dtype)
        add = (replace | fuse).unsqueeze(-1).to(e.dtype)
        return e * keep + p * add

    def forward(self, x, cache=None, pad=None):
        """x: input embeddings [B, n, hidden] of the positions after those in cache (a list of
        per-layer (k, v), or None). Training batches are right-padded and need nothing more under
        the causal mask; generation batches are left-padded, pad[b] positions of row b, which no
        other position may see. Rotary positions count from the first position, pads included:
        a shift of every position changes no attention score. Returns the logits [B, n, vocab],
        and the cache extended when one was given."""
        b, n, _ = x.shape
        start = cache[0][0].shape[2] if cache else 0
        d = self.c["hidden_size"] // self.c["num_attention_heads"]
        inv = 1.0 / (self.c["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        ang = torch.arange(start, start + n, dtype=torch.float32)[:, None] * inv[None]
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        mask = torch.full((n, start + n), float("-inf"), dtype=x.dtype).triu(start + 1)
        if pad is not None:  # hide pads as keys (but let a pad see itself, so that no row is all -inf)
            keys = torch.arange(start + n)[None, None, :]
            own = (torch.arange(start, start + n)[None, :, None] == keys)
            hidden = (keys < pad[:, None, None]) & ~own
            mask = mask[None].expand(b, -1, -1).masked_fill(hidden, float("-inf"))[:, None]
        new = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, cos, sin, mask, cache[i] if cache else None)
            new.append(kv)
        logits = self.norm(x) @ self.embed_tokens.weight.T
        return (logits, new) if cache is not None else logits

    def hf_state(self):
        """Weights under HuggingFace Qwen2 names, the projector as mm_projector.N."""
        out = {}
        for k, v in self.state_dict().items():
            if k.startswith("mm_projector."):
                out[k] = v
            elif k.startswith("embed_tokens.") or k.startswith("layers.") or k.startswith("norm."):
                out["model." + k] = v
        return out


def init_lm(model):
    for name, p in model.named_parameters():
        if p.dim() == 2 and "embed_tokens" not in name:
            nn.init.normal_(p, std=0.02)
            if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                with torch.no_grad():
                    p.mul_(1 / math.sqrt(2 * model.c["num_hidden_layers"]))
        elif name.endswith(".bias"):
            nn.init.zeros_(p)
