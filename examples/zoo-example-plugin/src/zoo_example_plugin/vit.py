"""A tiny Vision Transformer, sized for small images such as the 8×8 digits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention (written out, so every exporter sees plain matmuls)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.out(attended.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """Pre-norm transformer block: attention, then a GELU MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patches (a strided convolution) + class token + learned positions → blocks → class-token head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: Sequence[int] = (8, 8),
                 patch_size: int = 2, dim: int = 32, depth: int = 2, heads: int = 4, mlp_ratio: int = 2) -> None:
        super().__init__()
        height, width = (int(v) for v in image_size)
        if height % patch_size or width % patch_size:
            raise ValueError(f"image size {height}×{width} is not a whole number of {patch_size}×{patch_size} patches")
        if dim % heads:
            raise ValueError(f"dim {dim} must be a multiple of heads {heads}")
        if in_channels <= 0 or num_classes < 2 or depth <= 0:
            raise ValueError("in_channels and depth must be positive and num_classes at least 2")
        self.patches = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.positions = nn.Parameter(torch.randn(1, 1 + (height // patch_size) * (width // patch_size), dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)  # batch × patches × dim
        tokens = torch.cat([self.class_token.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.positions
        return self.head(self.norm(self.blocks(tokens))[:, 0])
