"""What a family tells ``zoo explain`` about its models: the extension points' types (no torch imported).

A family (built-in or third-party) overrides the optional :class:`zoo.family.Family` methods
``gradcam_layer``, ``attention_maps``, ``token_model`` and ``input_space`` and returns these; the core never
names a model.
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


@dataclass
class InputSpace:
    """How to explain a model whose input is neither an image nor text (a clip of audio, a row of features):
    where its inputs come from, which representation the attributions are made in, and how to draw them.

    ``read(path)`` gives the names and the raw model inputs (``N × …``, numpy, as ``zoo predict`` prepares that
    file; ``val:INDEX`` is read by zoo itself). ``represent(raw)`` maps a batch of raw inputs (a tensor) to the
    representation attributed (a log-mel spectrogram; the features themselves) and ``forward(representation)``
    to the model's ``N × outputs``: ``forward(represent(x))`` must be ``model(x)``, which zoo checks.
    ``baseline`` (``1 × …`` raw) is where Integrated Gradients starts and what occlusion paints in (silence,
    the training mean row). ``output_names`` name the outputs; ``classes`` says whether they are class scores
    (the largest is predicted, ``--target`` picks one) or values (every one is explained, ``--target`` refused).
    ``occlusion`` is the occlusion window over one representation (strides half of it), ``None`` to refuse
    occlusion. ``elements`` names the entries of a flat representation (columns) and ``shown(one)`` gives the
    value shown beside each (in the user's units). ``picture(explanation)`` draws one explanation as PNG bytes
    (``None``: no file is written). ``ig_steps`` is Integrated Gradients' default step count for these inputs
    (``None``: zoo's 64); a cheap model with kinks (a ReLU network on a row of features) needs more to be
    complete.
    """

    kind: str
    read: Callable[[str], tuple[list[str], Any]]
    represent: Callable[[Any], Any]
    forward: Callable[[Any], Any]
    baseline: Any
    output_names: Sequence[str]
    classes: bool = True
    occlusion: tuple[int, ...] | None = None
    elements: Sequence[str] | None = None
    shown: Callable[[Any], Any] | None = None
    picture: Callable[[Any], bytes] | None = None
    ig_steps: int | None = None
