"""What a family tells ``zoo explain`` about its models: the extension points' types (no torch imported).

A family (built-in or third-party) overrides the optional :class:`zoo.family.Family` methods
``gradcam_layer``, ``attention_maps`` and ``token_model`` and returns these; the core never names a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class AttentionMaps:
    """A vision transformer's attention probabilities for one batch, for attention rollout.

    ``maps`` holds one tensor per block, each ``N × heads × T × T`` (rows: queries, softmax over the keys),
    first block first. The first ``prefix_tokens`` tokens (a class token) come before the image patches, which
    form a ``grid`` of ``(rows, columns)`` patches in row-major order; rollout reads the first token's row.
    """

    maps: Sequence[Any]
    grid: tuple[int, int]
    prefix_tokens: int = 1


@dataclass
class TokenModel:
    """How to explain a model that reads tokens (a language model): which prompt tokens drove the next token.

    ``encode(text)`` gives the token ids; ``token_text(id)`` the text of one token (for display);
    ``embedding`` is the layer whose output Integrated Gradients integrates along (a ``torch.nn.Embedding``);
    ``next_token_logits(ids)`` maps an ``N × T`` long tensor to the ``N × vocab`` logits of the token after
    the last one; ``baseline_token`` fills the baseline prompt (a neutral token such as a space); ``context``
    is the longest prompt the model reads (longer prompts keep their last ``context`` tokens).
    """

    encode: Callable[[str], list[int]]
    token_text: Callable[[int], str]
    embedding: Any
    next_token_logits: Callable[[Any], Any]
    baseline_token: int = 0
    context: int = 0
