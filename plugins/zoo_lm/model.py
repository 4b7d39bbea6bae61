"""A decoder-only transformer (GPT): pre-norm blocks, causal attention through
``F.scaled_dot_product_attention``, learned positions, tied input/output embeddings, and a key/value cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int, dropout: float, activation: str = "gelu") -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), _gelu(activation), nn.Linear(4 * width, width))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, seq, width = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(width, dim=-1)
        q, k, v = (t.view(batch, seq, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        drop = self.dropout if self.training else 0.0
        if mask is None:  # training: the plain causal mask (fused kernels)
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        else:
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        x = x + F.dropout(self.proj(attn.transpose(1, 2).reshape(batch, seq, width)), drop, self.training)
        x = x + F.dropout(self.mlp(self.ln2(x)), drop, self.training)
        return x, k, v


class GPT(nn.Module):
    """Token ids [batch, seq] → next-token logits [batch, seq, vocab]."""

    def __init__(self, vocab_size: int = 256, context: int = 128, layers: int = 2, heads: int = 2,
                 width: int = 64, dropout: float = 0.0, activation: str = "gelu") -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be a multiple of heads {heads}")
        self.vocab_size, self.context, self.layers, self.heads = vocab_size, context, layers, heads
        self.width, self.activation = width, activation
        self.head_dim = width // heads
        self.embed = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads, dropout, activation) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.apply(_init)
        for block in self.blocks:  # GPT-2: residual projections scaled by 1/sqrt(2 * layers)
            for layer in (block.proj, block.mlp[2]):
                nn.init.normal_(layer.weight, std=0.02 / (2 * layers) ** 0.5)

    def import_state_dict(self, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> dict[str, torch.Tensor]:
        """``--init``: a ``transformers`` GPT-2 state dict (names mapped, Conv1D weights transposed) becomes this
        model's; a zoo state dict is returned as it is. A ``config.json`` beside the weights must describe this
        model (activation, vocabulary, shape), else one line says which ``--arg`` to pass."""
        from zoo_lm import hf_gpt2

        if not hf_gpt2.is_hf_gpt2(state):
            return state
        problem = hf_gpt2.check_config(metadata.get("config.json"), activation=self.activation,
                                       vocab_size=self.vocab_size, context=self.context, layers=self.layers,
                                       heads=self.heads, width=self.width)
        if problem:
            from zoo.errors import ZooError

            raise ZooError(f"--init: these GPT-2 weights do not fit this model: {problem}")
        return hf_gpt2.from_hf(state, self.layers)

    #: Called in place of ``forward`` (sampling at epoch ends): ``--strategy fsdp`` gathers the root's weights for it.
    fsdp_forward_methods = ("forward_cached",)

    def fsdp_blocks(self) -> list[nn.Module]:
        """What ``--strategy fsdp`` shards one by one: the blocks (the tied embedding is used by the root too)."""
        return list(self.blocks)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln_f(x) @ self.embed.weight.t()  # tied embeddings

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.embed(tokens) + self.position(positions)
        for block in self.blocks:
            x, _, _ = block(x)
        return self._logits(x)

    def forward_cached(self, tokens: torch.Tensor, past: list[tuple[torch.Tensor, torch.Tensor]],
                       attention_mask: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Logits for ``tokens`` following a cache of ``past`` keys/values (each [batch, heads, past, head_dim]),
        and the cache extended by them. An empty cache (past length 0) is a plain prefill.

        ``attention_mask`` [batch, past + seq] (1: a real token, 0: left padding; all ones when left out) lets rows
        of different lengths share a batch: a token attends to the real tokens up to it (and to itself, so a
        padding row is never empty), and its position is the count of real tokens before it."""
        batch, seq, past_len = tokens.shape[0], tokens.shape[1], past[0][0].shape[2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, past_len + seq, dtype=torch.long, device=tokens.device)
        real = attention_mask > 0
        positions = (real.long().cumsum(-1) - 1).clamp(min=0)[:, past_len:]  # [batch, seq]
        keys = torch.arange(past_len + seq, device=tokens.device)
        queries = keys[past_len:, None]
        # [batch, 1, seq, past + seq]: query i sees real keys up to its position, and always itself
        mask = (((keys <= queries) & real[:, None, :]) | (keys == queries))[:, None]
        x = self.embed(tokens) + self.position(positions)
        present = []
        for block, layer_past in zip(self.blocks, past, strict=True):
            x, k, v = block(x, layer_past, mask)
            present.append((k, v))
        return self._logits(x), present

    def empty_cache(self, batch: int, device: torch.device | str = "cpu"
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        shape = (batch, self.heads, 0, self.head_dim)
        return [(torch.zeros(shape, device=device), torch.zeros(shape, device=device)) for _ in self.blocks]


class CachedGPT(nn.Module):
    """The exported graph: ``input_ids, attention_mask, past_key_0, past_value_0, …`` → ``logits, present_key_0, …``.

    ``forward`` gets one named parameter per cache tensor (made by :func:`cached_gpt`), so the exporter
    sees a flat list of inputs it can give dynamic axes.
    """

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt

    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, past_flat: list[torch.Tensor]
            ) -> tuple[torch.Tensor, ...]:
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        logits, present = self.gpt.forward_cached(input_ids, past, attention_mask)
        return (logits, *(t for kv in present for t in kv))


def cache_names(layers: int, prefix: str) -> list[str]:
    """``past_key_0, past_value_0, past_key_1, …`` (or ``present_…``): the cache's graph names."""
    return [f"{prefix}_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]


def cached_gpt(gpt: GPT) -> CachedGPT:
    """A :class:`CachedGPT` whose ``forward(input_ids, attention_mask, past_key_0, past_value_0, …)`` names every
    input."""
    names = cache_names(gpt.layers, "past")
    source = (f"def forward(self, input_ids, attention_mask, {', '.join(names)}):\n"
              f"    return self.run(input_ids, attention_mask, [{', '.join(names)}])\n")
    namespace: dict = {}
    exec(source, namespace)  # a fixed template over generated identifiers, no user text
    cls = type(f"CachedGPT{gpt.layers}", (CachedGPT,), {"forward": namespace["forward"]})
    return cls(gpt).eval()


#: The MLP activations: exact GELU, or GPT-2's tanh approximation (``gelu_new`` in ``transformers``).
ACTIVATIONS = ("gelu", "gelu_tanh")


def _gelu(activation: str) -> nn.Module:
    return nn.GELU(approximate="tanh") if activation == "gelu_tanh" else nn.GELU()


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def gpt(vocab_size: int = 256, context: int = 128, layers: int = 2, heads: int = 2, width: int = 64,
        dropout: float = 0.0, activation: str = "gelu") -> GPT:
    """Builder referenced by the model specs (``activation``: ``gelu``, or ``gelu_tanh`` as GPT-2 computes it)."""
    if activation not in ACTIVATIONS:
        from zoo.errors import ZooError

        raise ZooError(f"--arg activation={activation!r} is not known; use one of {', '.join(ACTIVATIONS)}")
    return GPT(vocab_size, context, layers, heads, width, dropout, activation)


@torch.no_grad()
def greedy(model: GPT, prompt: list[int], new_tokens: int) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy continuation of ``prompt`` with the cache (batch 1): the new tokens and each step's logits."""
    model.eval()
    tokens = torch.tensor([prompt])
    past = model.empty_cache(1)
    out, steps = [], []
    for _ in range(new_tokens):
        logits, present = model.forward_cached(tokens, past)
        past = present
        step = logits[0, -1]
        steps.append(step)
        nxt = int(step.argmax())
        out.append(nxt)
        tokens = torch.tensor([[nxt]])
    return out, steps
