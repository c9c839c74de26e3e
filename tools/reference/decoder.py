"""A plain PyTorch implementation of the Qwen2 / Llama decoders, on HuggingFace-layout weights.

It is the reference that toklip's GGML backbone is checked against: written from the model
definitions (pre-norm blocks, RMSNorm, grouped-query attention, rotary positions that rotate
the two halves of each head, SwiGLU), in float64, with no KV cache, so that nothing in it is
shared with the code under test. Runs on Debian's python3-torch (1.13: attention is written out).
"""

import math

import torch


class Decoder:
    def __init__(self, config, weights):
        """config: a HuggingFace config.json as a dict; weights: name -> tensor (HF names)."""
        self.c = config
        self.w = {k: v.to(torch.float64) for k, v in weights.items()}
        self.heads = config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads") or self.heads
        self.head_dim = config.get("head_dim") or config["hidden_size"] // self.heads
        self.eps = config["rms_norm_eps"]
        self.inv_freq = rope_inv_freq(config, self.head_dim)

    def embed(self, ids):
        return self.w["model.embed_tokens.weight"][torch.as_tensor(ids, dtype=torch.long)]

    def forward(self, x):
        """x: [n, hidden] input embeddings of positions 0..n-1. Returns logits [n, vocab]."""
        n = x.shape[0]
        pos = torch.arange(n, dtype=torch.float64)
        scale = self.c.get("rope_scaling") or {}
        if (scale.get("rope_type") or scale.get("type")) == "linear":
            pos = pos / scale["factor"]
        angles = pos[:, None] * self.inv_freq[None, :]  # [n, head_dim/2]
        cos, sin = torch.cos(angles), torch.sin(angles)
        mask = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)

        for i in range(self.c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            h = rms_norm(x, self.w[p + "input_layernorm.weight"], self.eps)
            q = self.linear(h, p + "self_attn.q_proj").view(n, self.heads, self.head_dim)
            k = self.linear(h, p + "self_attn.k_proj").view(n, self.kv_heads, self.head_dim)
            v = self.linear(h, p + "self_attn.v_proj").view(n, self.kv_heads, self.head_dim)
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            group = self.heads // self.kv_heads
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
            scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(self.head_dim)
            scores = scores + mask  # mask before softmax
            attn = torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), v)
            x = x + self.linear(attn.reshape(n, -1), p + "self_attn.o_proj")

            h = rms_norm(x, self.w[p + "post_attention_layernorm.weight"], self.eps)
            gate = self.linear(h, p + "mlp.gate_proj")
            up = self.linear(h, p + "mlp.up_proj")
            x = x + self.linear(torch.nn.functional.silu(gate) * up, p + "mlp.down_proj")

        x = rms_norm(x, self.w["model.norm.weight"], self.eps)
        out = self.w.get("lm_head.weight")
        if out is None or self.c.get("tie_word_embeddings"):
            out = self.w["model.embed_tokens.weight"]
        return x @ out.T

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        return y if b is None else y + b


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate(t, cos, sin):
    """Rotary embedding as HuggingFace applies it: pairs (x_i, x_{i+d/2}) of each head."""
    half = t.shape[-1] // 2
    a, b = t[..., :half], t[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


def rope_inv_freq(config, dim):
    base = config.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    scale = config.get("rope_scaling") or {}
    if (scale.get("rope_type") or scale.get("type")) != "llama3":
        return inv
    # Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth ramp between.
    factor = scale["factor"]
    low, high = scale.get("low_freq_factor", 1.0), scale.get("high_freq_factor", 4.0)
    old = scale.get("original_max_position_embeddings", 8192)
    wavelen = 2 * math.pi / inv
    smooth = (old / wavelen - low) / (high - low)
    scaled = torch.where(wavelen > old / low, inv / factor, inv)
    medium = (wavelen >= old / high) & (wavelen <= old / low)
    return torch.where(medium, (1 - smooth) * inv / factor + smooth * inv, scaled)
