"""Built-in plugin: decoder-only transformer language models (the ``lm`` family) and text datasets.

Nothing here imports torch: the models, the family and the loaders are lazy ``"module:attr"`` references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl
from zoo.roles import RoleSpec
from zoo.specs import DatasetSpec, FamilySpec, InputSpec, ModelSpec

#: The graph role of a cached language model (``lm:lm``); its handlers live in ``zoo_lm.roles``.
LM_ROLE = RoleSpec(
    name="lm", summary="a decoder-only language model with its key/value cache as inputs and outputs",
    required=("tokenizer_file", "vocab_size", "context", "layers", "heads", "head_dim", "input", "logits", "past",
              "present"),
    input_keys=("input",), output_keys=("logits",), handlers="zoo_lm.roles:LMHandlers")

#: name: (summary, layers, heads, width, context, training defaults)
PRESETS = {
    "gpt-nano": ("Tiny GPT for tests and smoke runs (2 layers, 2 heads, width 64, context 128; ~0.12 M params)",
                 2, 2, 64, 128, {"epochs": 2, "batch_size": 32, "lr": 3e-3, "warmup": 20}),
    "gpt-micro": ("Small GPT (4 layers, 4 heads, width 128, context 128; ~0.8 M params)",
                  4, 4, 128, 128, {"epochs": 3, "batch_size": 32, "lr": 2e-3}),
    "gpt-mini": ("GPT of ~10 M parameters (6 layers, 6 heads, width 384, context 256)",
                 6, 6, 384, 256, {"epochs": 5, "batch_size": 32, "lr": 1e-3}),
    "gpt2-small": ("GPT-2 small's shape (12 layers, 12 heads, width 768, context 1024; ~85 M params with bytes)",
                   12, 12, 768, 1024, {"epochs": 1, "batch_size": 8, "lr": 6e-4, "warmup": 200}),
}


@hookimpl
def register_families(register: Callable[[Any], None]) -> None:
    register(FamilySpec(
        name="lm",
        summary="Decoder-only transformers trained on next-token prediction; exported with a key/value cache",
        factory="zoo_lm.family:LMFamily",
        data_kinds=("text",), target_kinds=("tokens",),  # tokenised by prepare_data
    ))


@hookimpl
def register_models(register: Callable[[Any], None]) -> None:
    for name, (summary, layers, heads, width, context, defaults) in PRESETS.items():
        register(ModelSpec(
            name=name, family="lm", summary=summary, builder="zoo_lm.model:gpt",
            input=InputSpec(1, 1, context),  # one row of `context` token ids
            defaults=dict(defaults), dataset="pydoc-topics",
            model_args={"vocab_size": 256, "context": context, "layers": layers, "heads": heads, "width": width,
                        "dropout": 0.0, "activation": "gelu"},
        ))


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    register(DatasetSpec(name="pydoc-topics", summary="Python's language reference text shipped with CPython "
                         "(pydoc_data.topics, ~466 KB, no download)", loader="zoo_lm.data:load_pydoc_topics"))
    register(DatasetSpec(name="text", summary="Your own UTF-8 text: text:FILE or text:DIR (.txt/.md/.rst files)",
                         loader="zoo_lm.data:load_text", needs_path=True))


@hookimpl
def register_roles(register: Callable[[Any], None]) -> None:
    register(LM_ROLE)


@hookimpl
def register_commands(cli: Any) -> None:
    from zoo_lm.commands import generate
    from zoo_lm.hf_export import hf_export_command  # click only: torch loads when the command runs

    cli.add_command(generate)
    cli.add_command(hf_export_command)
