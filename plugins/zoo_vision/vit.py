"""Vision Transformers with timm's architecture and parameter names (written here, not imported).

The layout follows ``timm.models.vision_transformer.VisionTransformer`` with its defaults (class token,
learned position embedding that includes it, pre-norm blocks, LayerNorm eps 1e-6, qkv bias, token
pooling), so a timm ``vit_*_patch16_224`` state dict loads as is. ``stem="small"`` uses 4×4 patches
instead of 16×16, so 32×32 images give 64 tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.family import AttentionMaps

STEMS = ("standard", "small")
SMALL_PATCH = 4


class PatchEmbed(nn.Module):
    """Non-overlapping patches → tokens through one strided convolution (``proj``)."""

    def __init__(self, in_channels: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention: one ``qkv`` projection, scaled dot product, ``proj``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """The attention probabilities (batch × heads × tokens × tokens) the forward pass uses, for explanations."""
        batch, tokens, dim = x.shape
        q, k, _ = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        return (q @ k.transpose(-2, -1) * (dim // self.heads) ** -0.5).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    """``fc1`` → GELU → ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path: float = 0.0) -> None:
        super().__init__()
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._dropped(self.attn(self.norm1(x)))
        return x + self._dropped(self.mlp(self.norm2(x)))

    def _dropped(self, branch: torch.Tensor) -> torch.Tensor:
        """Stochastic depth (timm's drop-path): in training, drop the branch for whole samples with probability
        ``drop_path`` and scale the kept ones by 1 / (1 − p); the identity in evaluation and export."""
        if not self.training or self.drop_path == 0.0:
            return branch
        keep = 1.0 - self.drop_path
        mask = branch.new_empty((branch.shape[0],) + (1,) * (branch.ndim - 1)).bernoulli_(keep)
        return branch * mask / keep


class VisionTransformer(nn.Module):
    """timm's ViT: patch embedding, class token, position embedding, ``blocks``, ``norm``, ``head``.

    ``checkpoint_activations`` recomputes each block's activations in the backward pass (less memory,
    about a third more compute); it changes nothing in the weights or the outputs.
    """

    #: What ``--init`` reads, for its error line.
    init_layouts = "timm's layout (timm's vit_*_patch16 state_dict), with the same --image-size"

    def __init__(self, dim: int, depth: int, heads: int, in_channels: int = 3, num_classes: int = 1000,
                 image_size: Sequence[int] = (224, 224), patch_size: int = 16, stem: str = "standard",
                 mlp_ratio: float = 4.0, checkpoint_activations: bool = False, drop_path: float = 0.0) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
        if dim <= 0 or depth <= 0 or heads <= 0 or dim % heads:
            raise ValueError(f"dim ({dim}) must be a positive multiple of heads ({heads}), depth positive")
        if in_channels <= 0 or num_classes < 2:
            raise ValueError("in_channels must be positive and num_classes at least 2")
        patch = SMALL_PATCH if stem == "small" else int(patch_size)
        height, width = (int(image_size), int(image_size)) if isinstance(image_size, int) else map(int, image_size)
        if height % patch or width % patch:
            raise ValueError(f"image size {height}×{width} is not a multiple of the {patch}×{patch} patch; "
                             "use --image-size with multiples of it (or --arg stem=small for 4×4 patches)")
        self.checkpoint_activations = checkpoint_activations
        self.patch_embed = PatchEmbed(in_channels, dim, patch)
        self.grid = (height // patch, width // patch)
        tokens = self.grid[0] * self.grid[1] + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path}")
        # stochastic depth grows linearly with depth, to drop_path at the last block (timm's rule)
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio, rate) for rate in rates))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def fsdp_blocks(self) -> list[nn.Module]:
        """What ``--strategy fsdp`` shards one by one (the rest goes with the root): the transformer blocks."""
        return list(self.blocks)

    def import_state_dict(self, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> dict[str, torch.Tensor]:
        """``--init`` at another image size: the position embedding's patch grid is resampled (bicubic, antialiased,
        as timm does) to this model's grid; the class token's row is kept as it is."""
        saved, here = state.get("pos_embed"), self.pos_embed
        if saved is None or saved.shape == here.shape or saved.ndim != 3 or saved.shape[-1] != here.shape[-1]:
            return state
        old_grid, new_grid = _grid(saved.shape[1] - 1), self.grid
        if old_grid is None:
            return state  # not a square grid plus a class token: left for the mismatch check to name
        import torch.nn.functional as F

        patches = saved[:, 1:].reshape(1, *old_grid, -1).permute(0, 3, 1, 2).float()
        patches = F.interpolate(patches, size=new_grid, mode="bicubic", antialias=True, align_corners=False)
        patches = patches.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1).to(saved.dtype)
        return {**state, "pos_embed": torch.cat([saved[:, :1], patches], dim=1)}

    def lr_layer_groups(self) -> list[tuple[str, ...]]:
        """Layers from input to output for ``--hp layer_decay``: the embeddings, each block, then norm and head."""
        return [("patch_embed", "cls_token", "pos_embed"), *((f"blocks.{i}",) for i in range(len(self.blocks))),
                ("norm", "head")]

    def _init_weights(self) -> None:
        """timm's default ("jax"-free) init: truncated normal 0.02 for linears and the position embedding."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def attention_maps(self, x: torch.Tensor) -> AttentionMaps:
        """Every block's attention probabilities for ``x`` (``zoo explain --method attention``: rollout)."""
        grid = (x.shape[2] // self.patch_embed.proj.stride[0], x.shape[3] // self.patch_embed.proj.stride[1])
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        maps = []
        for block in self.blocks:
            maps.append(block.attn.probabilities(block.norm1(x)))
            x = block(x)
        return AttentionMaps(maps, grid, prefix_tokens=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        if self.checkpoint_activations and self.training:
            from torch.utils.checkpoint import checkpoint

            for block in self.blocks:
                x = checkpoint(block, x, use_reentrant=False)
        else:
            x = self.blocks(x)
        return self.head(self.norm(x)[:, 0])


def _grid(patches: int) -> tuple[int, int] | None:
    """The square patch grid of a saved position embedding (timm's own are square), or None."""
    side = round(patches ** 0.5)
    return (side, side) if side * side == patches else None


def _vit(dim: int, depth: int, heads: int):
    def build(in_channels: int = 3, num_classes: int = 1000, image_size: Sequence[int] = (224, 224),
              patch_size: int = 16, stem: str = "standard", checkpoint_activations: bool = False,
              drop_path: float = 0.0) -> VisionTransformer:
        return VisionTransformer(dim, depth, heads, in_channels, num_classes, image_size, patch_size, stem,
                                 checkpoint_activations=checkpoint_activations, drop_path=drop_path)

    build.__doc__ = f"ViT with width {dim}, depth {depth}, {heads} heads (timm layout)."
    return build


vit_tiny = _vit(192, 12, 3)  # 5,717,416 parameters at 1000 classes, 224×224, patch 16
vit_small = _vit(384, 12, 6)  # 22,050,664
vit_base = _vit(768, 12, 12)  # 86,567,656
