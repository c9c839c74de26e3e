"""A PyTorch TokLIP written from its published structure, with the official state-dict key names.

Mirrors, module by module (../shared/reference/toklip.md; TencentARC/TokLIP, LlamaGen's VQ-16):
  visual.trunk.vq.*       LlamaGen VQ: encoder, quant_conv, quantize.embedding, post_quant_conv,
                          decoder (GroupNorm, swish, ResBlocks, single-head AttnBlocks; downsample =
                          pad right/bottom then stride-2 conv; upsample = nearest x2 then conv)
  visual.trunk.*          timm ViT as TokLIP changed it: vq_table -> GELU(erf) -> vq_mapping +
                          pos_embed, pre-norm blocks under a causal mask, final norm, MAP head
  text.*                  open_clip's text tower as SigLIP2 uses it: bidirectional, last-token
                          pooling, text_projection
Widths, depths, GroupNorm groups and the VQ resolution blocks are parameters, so that a small
model of the same structure can be made for tests. Runs on Debian's torch 1.13 (attention is
written out: mask added before the softmax, as F.scaled_dot_product_attention does).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def swish(x):
    return x * torch.sigmoid(x)


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def attention(q, k, v, mask=None):
    """q [..., n, d], k/v [..., m, d]; scale d^-0.5; an additive mask goes in before the softmax."""
    w = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        w = w + mask
    return torch.softmax(w, dim=-1) @ v


# --- LlamaGen VQ-16 ----------------------------------------------------------------------------


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).reshape(b, c, h * w).transpose(1, 2) for m in (self.q, self.k, self.v))
        o = attention(q, k, v).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(o)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, ch, ch_mult, res_blocks, z_channels, groups):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, 1, 1)
        self.conv_blocks = nn.ModuleList()
        cin = ch
        for level, mult in enumerate(ch_mult):
            block = nn.Module()
            block.res, block.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(res_blocks):
                block.res.append(ResnetBlock(cin, ch * mult, groups))
                cin = ch * mult
                if level == len(ch_mult) - 1:
                    block.attn.append(AttnBlock(cin, groups))
            if level != len(ch_mult) - 1:
                block.downsample = Downsample(cin)
            self.conv_blocks.append(block)
        self.mid = nn.ModuleList([ResnetBlock(cin, cin, groups), AttnBlock(cin, groups), ResnetBlock(cin, cin, groups)])
        self.norm_out = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv_out = nn.Conv2d(cin, z_channels, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for block in self.conv_blocks:
            for i, res in enumerate(block.res):
                h = res(h)
                if len(block.attn) > 0:
                    h = block.attn[i](h)
            if hasattr(block, "downsample"):
                h = block.downsample(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch, ch_mult, res_blocks, z_channels, groups):
        super().__init__()
        cin = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, cin, 3, 1, 1)
        self.mid = nn.ModuleList([ResnetBlock(cin, cin, groups), AttnBlock(cin, groups), ResnetBlock(cin, cin, groups)])
        self.conv_blocks = nn.ModuleList()
        for level in reversed(range(len(ch_mult))):
            block = nn.Module()
            block.res, block.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(res_blocks + 1):
                block.res.append(ResnetBlock(cin, ch * ch_mult[level], groups))
                cin = ch * ch_mult[level]
                if level == len(ch_mult) - 1:
                    block.attn.append(AttnBlock(cin, groups))
            if level != 0:
                block.upsample = Upsample(cin)
            self.conv_blocks.append(block)
        self.norm_out = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv_out = nn.Conv2d(cin, 3, 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for block in self.conv_blocks:
            for i, res in enumerate(block.res):
                h = res(h)
                if len(block.attn) > 0:
                    h = block.attn[i](h)
            if hasattr(block, "upsample"):
                h = block.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class Quantizer(nn.Module):
    def __init__(self, n, dim):
        super().__init__()
        self.embedding = nn.Embedding(n, dim)
        self.register_buffer("codebook_used", torch.zeros(65536))

    def codebook(self):
        return F.normalize(self.embedding.weight, dim=-1)

    def forward(self, z):
        """z [B, C, h, w] -> ids [B, h*w] in raster order, as LlamaGen: argmin of squared distance
        between l2-normalized latents and l2-normalized codebook rows."""
        b, c, h, w = z.shape
        flat = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, c), dim=-1)
        e = self.codebook()
        d = (flat ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * flat @ e.T
        return d.argmin(1).reshape(b, h * w), d


class VQModel(nn.Module):
    def __init__(self, ch, ch_mult, res_blocks, z_channels, groups, codebook_size=16384, embed_dim=8):
        super().__init__()
        self.encoder = Encoder(ch, ch_mult, res_blocks, z_channels, groups)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.quantize = Quantizer(codebook_size, embed_dim)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        self.decoder = Decoder(ch, ch_mult, res_blocks, z_channels, groups)

    def encode(self, x):
        return self.quantize(self.quant_conv(self.encoder(x)))

    def decode(self, ids, grid):
        q = self.quantize.codebook()[ids]  # [B, N, 8]
        q = q.reshape(ids.shape[0], grid, grid, -1).permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(q))


# --- the TokLIP ViT trunk -----------------------------------------------------------------------


class Mlp(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(gelu_tanh(self.fc1(x)))


class VitAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)

    def forward(self, x, mask):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(attention(q, k, v, mask).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, width, heads, hidden):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
        self.attn, self.mlp = VitAttention(width, heads), Mlp(width, hidden)

    def forward(self, x, mask):
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class AttentionPool(nn.Module):
    """timm's AttentionPoolLatent: one latent query over all tokens, no mask; o + mlp(norm(o))."""

    def __init__(self, width, heads, hidden):
        super().__init__()
        self.heads = heads
        self.latent = nn.Parameter(torch.zeros(1, 1, width))
        self.q, self.kv, self.proj = nn.Linear(width, width), nn.Linear(width, 2 * width), nn.Linear(width, width)
        self.norm, self.mlp = nn.LayerNorm(width, eps=1e-6), Mlp(width, hidden)

    def forward(self, x):
        b, n, c = x.shape
        d = c // self.heads
        q = self.q(self.latent.expand(b, -1, -1)).reshape(b, 1, self.heads, d).transpose(1, 2)
        k, v = self.kv(x).reshape(b, n, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        o = self.proj(attention(q, k, v).transpose(1, 2).reshape(b, 1, c))
        return (o + self.mlp(self.norm(o)))[:, 0]


class Trunk(nn.Module):
    def __init__(self, vq, grid, width, depth, heads, hidden, patch=16):
        super().__init__()
        self.vq = vq
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, width, patch, patch)  # in the checkpoint, unused by TokLIP
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, width))
        self.vq_table = nn.Linear(vq.quant_conv.out_channels, 4 * width)
        self.vq_mapping = nn.Linear(4 * width, width)
        self.blocks = nn.ModuleList([Block(width, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.attn_pool = AttentionPool(width, heads, hidden)

    def features(self, ids):
        """Per-token semantic features [B, N, width] of VQ ids [B, N] (raster order)."""
        x = self.vq_mapping(F.gelu(self.vq_table(self.vq.quantize.codebook()[ids])))  # exact (erf) GELU
        x = x + self.pos_embed[:, : ids.shape[1]]
        n = ids.shape[1]
        mask = torch.full((n, n), float("-inf"), dtype=x.dtype).triu(1)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.norm(x)


# --- the SigLIP2 text tower -------------------------------------------------------------------


class TextBlock(nn.Module):
    def __init__(self, width, heads, hidden):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
        self.attn = nn.Module()
        self.attn.in_proj_weight = nn.Parameter(torch.zeros(3 * width, width))
        self.attn.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.attn.out_proj = nn.Linear(width, width)
        self.mlp = nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x):
        b, n, c = x.shape
        h = self.ln_1(x)
        q, k, v = (h @ self.attn.in_proj_weight.T + self.attn.in_proj_bias).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.attn.out_proj(attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        return x + self.mlp.c_proj(gelu_tanh(self.mlp.c_fc(self.ln_2(x))))


class TextTower(nn.Module):
    def __init__(self, vocab, context, width, depth, heads, hidden):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context, width))
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList([TextBlock(width, heads, hidden) for _ in range(depth)])
        self.ln_final = nn.LayerNorm(width, eps=1e-6)
        self.text_projection = nn.Linear(width, width)

    def forward(self, ids):
        """ids [B, context] (padded) -> text embeddings [B, width], from the last position."""
        x = self.token_embedding(ids) + self.positional_embedding[: ids.shape[1]]
        for blk in self.transformer.resblocks:
            x = blk(x)
        return self.text_projection(self.ln_final(x)[:, -1])


class TokLIP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        vq = VQModel(cfg["vq_ch"], cfg["vq_ch_mult"], cfg["vq_res_blocks"], cfg["vq_z_channels"], cfg["vq_groups"])
        self.visual = nn.Module()
        self.visual.trunk = Trunk(vq, cfg["grid"], cfg["width"], cfg["depth"], cfg["heads"], cfg["mlp"])
        self.text = TextTower(cfg["vocab"], cfg["context"], cfg["width"], cfg["text_depth"], cfg["heads"], cfg["mlp"])
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-10.0))
