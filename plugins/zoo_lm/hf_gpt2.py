"""GPT-2 weights in Hugging Face ``transformers``' layout, both ways.

``GPT2LMHeadModel`` names its tensors ``transformer.h.{i}.attn.c_attn.weight`` …, stores its linear layers as
``Conv1D`` (weight ``[in, out]``, the transpose of ``nn.Linear``'s) and computes GELU in its tanh form
(``activation_function="gelu_new"``). zoo's :class:`zoo_lm.model.GPT` has the same blocks under other names; these
functions map one state dict onto the other (pure key renames and transposes, no arithmetic), so the logits are
equal. Needs torch only for ``.t().contiguous()``; ``transformers`` itself is never imported.
"""

from __future__ import annotations

import json
from typing import Any

#: zoo's name → GPT-2's, per block; ``True`` where GPT-2 stores the weight transposed (Conv1D).
_BLOCK_KEYS = {
    "ln1.weight": ("ln_1.weight", False), "ln1.bias": ("ln_1.bias", False),
    "qkv.weight": ("attn.c_attn.weight", True), "qkv.bias": ("attn.c_attn.bias", False),
    "proj.weight": ("attn.c_proj.weight", True), "proj.bias": ("attn.c_proj.bias", False),
    "ln2.weight": ("ln_2.weight", False), "ln2.bias": ("ln_2.bias", False),
    "mlp.0.weight": ("mlp.c_fc.weight", True), "mlp.0.bias": ("mlp.c_fc.bias", False),
    "mlp.2.weight": ("mlp.c_proj.weight", True), "mlp.2.bias": ("mlp.c_proj.bias", False),
}
_TOP_KEYS = {"embed.weight": "transformer.wte.weight", "position.weight": "transformer.wpe.weight",
             "ln_f.weight": "transformer.ln_f.weight", "ln_f.bias": "transformer.ln_f.bias"}
#: GPT-2 activations and the zoo ``activation`` argument that computes each.
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def is_hf_gpt2(state: dict[str, Any]) -> bool:
    """Whether a state dict is in ``transformers``' GPT-2 layout (with or without the ``transformer.`` prefix)."""
    return any(key.endswith("h.0.attn.c_attn.weight") for key in state)


def _key_map(layers: int) -> dict[str, tuple[str, bool]]:
    mapping = {zoo: (hf, False) for zoo, hf in _TOP_KEYS.items()}
    for i in range(layers):
        for zoo, (hf, transposed) in _BLOCK_KEYS.items():
            mapping[f"blocks.{i}.{zoo}"] = (f"transformer.h.{i}.{hf}", transposed)
    return mapping


def from_hf(state: dict[str, Any], layers: int) -> dict[str, Any]:
    """A ``GPT2LMHeadModel`` / ``GPT2Model`` state dict → zoo's :class:`GPT` names and layouts.

    ``lm_head.weight`` (tied to the token embedding) and the attention-mask buffers older checkpoints carry are
    dropped; anything else left over, or missing, is left for the caller's mismatch check to name."""
    if not any(key.startswith("transformer.") for key in state):  # GPT2Model saves without the prefix
        state = {f"transformer.{key}": value for key, value in state.items()}
    out: dict[str, Any] = {}
    used = set()
    for zoo, (hf, transposed) in _key_map(layers).items():
        if hf in state:
            out[zoo] = state[hf].t().contiguous() if transposed else state[hf]
            used.add(hf)
    for key, value in state.items():
        if key in used or key == "lm_head.weight" or key.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        out[key] = value  # unknown: reported by the caller as unexpected
    return out


def to_hf(state: dict[str, Any], layers: int) -> dict[str, Any]:
    """zoo's :class:`GPT` state dict → ``GPT2LMHeadModel``'s (``lm_head.weight`` left out: it is tied)."""
    return {hf: (state[zoo].t().contiguous() if transposed else state[zoo].contiguous())
            for zoo, (hf, transposed) in _key_map(layers).items()}


def hf_config(*, vocab_size: int, context: int, layers: int, heads: int, width: int, activation: str) -> dict[str, Any]:
    """``config.json`` of the equivalent ``GPT2LMHeadModel`` (dropouts 0: zoo exports inference weights)."""
    hf_activation = "gelu_new" if activation == "gelu_tanh" else "gelu"
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab_size,
            "n_positions": context, "n_ctx": context, "n_embd": width, "n_layer": layers, "n_head": heads,
            "n_inner": None, "activation_function": hf_activation, "layer_norm_epsilon": 1e-5,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "tie_word_embeddings": True,
            "scale_attn_weights": True, "initializer_range": 0.02}


def check_config(config_json: str | None, *, activation: str, vocab_size: int, context: int, layers: int,
                 heads: int, width: int) -> str | None:
    """What in a ``transformers`` ``config.json`` does not match the model being built (None when all fits)."""
    if not config_json:
        return None
    try:
        config = json.loads(config_json)
    except ValueError:
        return "its config.json is not JSON"
    wanted = {"n_layer": layers, "n_head": heads, "n_embd": width, "vocab_size": vocab_size, "n_positions": context}
    args = {"n_layer": "layers", "n_head": "heads", "n_embd": "width", "vocab_size": "vocab_size",
            "n_positions": "context"}
    for key, value in wanted.items():
        if key in config and config[key] != value:
            return f"its config.json has {key}={config[key]} but the model {args[key]}={value}; pass --arg " \
                   f"{args[key]}={config[key]}"
    hf_activation = config.get("activation_function", "gelu_new")
    if ACTIVATIONS.get(hf_activation) != activation:
        want = ACTIVATIONS.get(hf_activation)
        fix = f"pass --arg activation={want}" if want else "zoo's GPT computes gelu and gelu_tanh only"
        return f"its config.json has activation_function={hf_activation!r} but the model uses {activation!r}; {fix}"
    return None
