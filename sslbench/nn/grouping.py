"""AVGN's grouping transformers (Mo & Tian, CVPR 2023, https://arxiv.org/abs/2303.17056); reference
stoneMo/AVGN ``grouping.py`` (``ModalityTrans``, ``GroupingBlock``, ``AssignAttention``), itself
GroupViT's grouping block (Xu et al., CVPR 2022).

A modality's tokens and C learnable class tokens go through ``depth`` pre-norm transformer blocks
together; then each class token gathers the modality tokens assigned to it:

    tokens' = LN(MLP_over_tokens(LN(tokens)))                   (C -> C output groups)
    tokens' = LN(tokens' + CrossAttn(tokens', LN(x)) + MLP)     (post-norm cross-attention)
    A = softmax over the groups of q(tokens') k(LN(x))^T / sqrt(d), then A / (sum over x of A + 1)
    out = tokens' + proj(A v(LN(x)));  out = out + MLP(LN(out))

One (B, C, d) embedding per class comes out. Attribute names follow the reference's state dict,
so its checkpoints load key for key. Soft assignment is the reference's setting (``--attn_assign
soft``); ``hard`` is the straight-through argmax, with Gumbel noise while training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import StochasticDepth


class Mlp(nn.Module):
    """Linear, GELU, Linear."""

    def __init__(self, dim: int, hidden: int, out: int | None = None):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out or dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _heads(x: Tensor, heads: int) -> Tensor:
    """(B, N, C) -> (B, heads, N, C / heads)."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    """(B, heads, N, c) -> (B, N, heads * c)."""
    b, h, n, c = x.shape
    return x.transpose(1, 2).reshape(b, n, h * c)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused qkv projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        return self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))


class CrossAttention(nn.Module):
    """Multi-head attention of queries over another sequence (separate q, k, v projections)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        q, k, v = _heads(self.q_proj(query), self.heads), _heads(self.k_proj(key), self.heads), _heads(self.v_proj(key), self.heads)
        return self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))


class Block(nn.Module):
    """Pre-norm transformer block with stochastic depth (timm's DropPath = torchvision's row mode)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PostNormCrossBlock(nn.Module):
    """``CrossAttnBlock(post_norm=True)``: query + attention over the key, + MLP, then LayerNorm."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.attn = CrossAttention(dim, heads)
        self.norm2, self.mlp, self.norm_post = nn.LayerNorm(dim), Mlp(dim, int(dim * mlp_ratio)), nn.LayerNorm(dim)

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        x = query + self.attn(query, key)
        return self.norm_post(x + self.mlp(self.norm2(x)))


def straight_through_argmax(soft: Tensor, dim: int) -> Tensor:
    """One-hot of the argmax in the forward pass, the soft gradient in the backward pass."""
    hard = torch.zeros_like(soft).scatter_(dim, soft.argmax(dim, keepdim=True), 1.0)
    return hard - soft.detach() + soft


class AssignAttention(nn.Module):
    """One-head attention whose weights are normalised over the *queries* (each modality token is
    shared out among the groups), then divided by (their sum over the tokens + ``eps``)."""

    def __init__(self, dim: int, hard: bool = False, gumbel: bool = False, eps: float = 1.0):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.proj = (nn.Linear(dim, dim) for _ in range(4))
        self.hard, self.gumbel, self.eps, self.scale = hard, gumbel, eps, dim**-0.5

    def weights(self, logits: Tensor) -> Tensor:
        if self.gumbel and self.training:  # Gumbel(0, 1) noise, temperature 1
            logits = logits - torch.empty_like(logits).exponential_().log()
        soft = logits.softmax(dim=-2)
        return straight_through_argmax(soft, -2) if self.hard else soft

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        attn = self.weights(self.q_proj(query) @ self.k_proj(key).transpose(-2, -1) * self.scale)
        attn = attn / (attn.sum(dim=-1, keepdim=True) + self.eps)
        return self.proj(attn @ self.v_proj(key))


class GroupingBlock(nn.Module):
    """S_in group tokens gather the modality tokens into S_out groups (GroupViT's grouping block)."""

    def __init__(self, dim: int, group_tokens: int, output_groups: int, heads: int, hard: bool = False):
        super().__init__()
        self.norm_tokens, self.norm_x = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp_inter = Mlp(group_tokens, int(0.5 * dim), output_groups)  # mixes across tokens
        self.norm_post_tokens = nn.LayerNorm(dim)
        self.pre_assign_attn = PostNormCrossBlock(dim, heads)
        self.assign = AssignAttention(dim, hard=hard, gumbel=hard)
        self.norm_new_x, self.mlp_channels = nn.LayerNorm(dim), Mlp(dim, 4 * dim)

    def forward(self, x: Tensor, group_tokens: Tensor) -> Tensor:
        x = self.norm_x(x)
        tokens = self.mlp_inter(self.norm_tokens(group_tokens).transpose(1, 2)).transpose(1, 2)
        tokens = self.pre_assign_attn(self.norm_post_tokens(tokens), x)
        grouped = self.assign(tokens, x) + tokens
        return grouped + self.mlp_channels(self.norm_new_x(grouped))


class GroupingEncoder(nn.Module):
    """``ModalityTrans``: blocks over [modality tokens, class tokens], then the grouping block.
    (B, L, d) tokens and (C, d) class tokens -> (B, C, d), one embedding per class."""

    def __init__(self, dim: int, classes: int, depth: int = 3, heads: int = 8, drop_path: float = 0.1, hard: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, drop_path=drop_path) for _ in range(depth))
        self.grouping = GroupingBlock(dim, classes, classes, heads, hard=hard)

    def forward(self, x: Tensor, class_tokens: Tensor) -> Tensor:
        tokens = class_tokens.expand(x.shape[0], -1, -1)
        joint = torch.cat([x, tokens], dim=1)
        for block in self.blocks:
            joint = block(joint)
        n = tokens.shape[1]
        return self.grouping(joint[:, :-n], joint[:, -n:])
