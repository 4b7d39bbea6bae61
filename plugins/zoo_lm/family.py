"""The ``lm`` family: next-token cross-entropy on token windows, evaluated in nats per token, bits per byte and
perplexity; exported as one graph with the key/value cache as explicit inputs and outputs."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data import DataInfo, DataSplits, TextInfo
from zoo.errors import ZooError
from zoo.family import (
    Family,
    GraphSpec,
    LRSchedule,
    ReportContext,
    ReportSection,
    RunContext,
    TokenModel,
)
from zoo.specs import ModelSpec
from zoo_lm.model import GPT, cache_names, cached_gpt
from zoo_lm.optim import ClippedAdamW
from zoo_lm.tokenizer import (
    BYTES,
    FILE,
    byte_tokenizer_json,
    decode,
    encode,
    parse_tokenizer,
    read_tokenizer_file,
    train_bpe_json,
)

ROLE_KEY, ROLE = "zoo_role", "lm:lm"  # the role this plugin registers (register_roles in zoo_lm)
#: Graph metadata key holding what ``zoo generate`` needs (tokenizer file, cache layout, names), as JSON.
LM_KEY = "zoo_lm"
GRAPH = "lm"
#: The parity tolerance (atol and rtol) of the exported graph against PyTorch.
LOGITS_TOLERANCE = 1e-4
TOKENIZER_FILE = "tokenizer.json"
#: Each epoch continues these prompts into ``samples/epoch-NNN.txt``.
PROMPTS = ("The ", "def ", "In Python, ")
SAMPLE_TOKENS = 120
EVAL_BATCH = 32
#: Characters of validation text whose next token the report explains.
REPORT_PROMPT_CHARS = 64
#: Models above this many parameters export with their weights in an external data file.
EXTERNAL_DATA_PARAMS = 50_000_000


def token_windows(ids: np.ndarray, context: int) -> np.ndarray:
    """Non-overlapping windows of ``context + 1`` tokens (inputs and their next tokens), stride ``context``."""
    starts = np.arange(0, len(ids) - context, context)
    return np.stack([ids[s:s + context + 1] for s in starts]).astype(np.int64)


def split_text(split: np.ndarray) -> str:
    """The UTF-8 text of a text split (a 1×N uint8 row)."""
    return np.asarray(split, np.uint8).reshape(-1).tobytes().decode("utf-8")


class LMFamily(Family):
    """Decoder-only language models trained on next-token prediction."""

    monitor = ("val_loss", "min")
    hyperparameters = {  # noqa: RUF012
        "optimizer": "adamw", "tokenizer": BYTES, "weight_decay": 0.1, "beta2": 0.95,
        "warmup": 100, "min_lr_ratio": 0.1, "clip": 1.0,
    }
    # --- data ---------------------------------------------------------------------------------------

    def prepare_data(self, ctx: RunContext, model_args: dict[str, Any]) -> DataSplits:
        """Text → tokenizer (bytes, or a BPE trained on the training text) → windows of ``context + 1`` tokens."""
        data, hp = ctx.data, ctx.hyperparameters
        if data.info.kind != "text":
            raise ZooError(f"language models train on text, and dataset {data.info.name!r} holds images; "
                           "use --data pydoc-topics (embedded) or --data text:PATH")
        context = int(model_args.get("context", 128))
        kind, size = parse_tokenizer(hp.get("tokenizer", BYTES))
        train_text, val_text = split_text(data.x_train), split_text(data.x_val)
        if kind == FILE:
            tokenizer_json = read_tokenizer_file(str(size))
        else:
            tokenizer_json = byte_tokenizer_json() if kind == BYTES else train_bpe_json(train_text, int(size))
        train_ids, val_ids = encode(tokenizer_json, train_text), encode(tokenizer_json, val_text)
        for label, ids in (("training", train_ids), ("validation", val_ids)):
            if len(ids) <= context:
                raise ZooError(f"{data.info.name}: the {label} text is {len(ids)} tokens, not longer than the "
                               f"context of {context}; give more text or pass --arg context=N with a smaller N")
        from tokenizers import Tokenizer

        vocab = Tokenizer.from_str(tokenizer_json).get_vocab_size()
        name = {BYTES: BYTES, "bpe": f"bpe:{size}", FILE: f"file:{Path(str(size)).name}"}[kind]
        text = TextInfo(tokenizer=name, vocab_size=vocab, context=context,
                        tokenizer_json=tokenizer_json, bytes_per_token=len(val_text.encode()) / len(val_ids),
                        train_tokens=len(train_ids), val_tokens=len(val_ids))
        x_train, x_val = token_windows(train_ids, context), token_windows(val_ids, context)
        return DataSplits(replace(data.info, text=text), x_train, np.zeros(len(x_train), np.int64),
                          x_val, np.zeros(len(x_val), np.int64))

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        if data.text is None:
            return {}
        return {"vocab_size": data.text.vocab_size, "context": data.text.context}

    def build(self, spec: ModelSpec, data: DataInfo, model_args: dict[str, Any]) -> torch.nn.Module:
        """The GPT, once its vocabulary is checked against the tokenizer's (ids it cannot decode, or a tokenizer
        whose ids the model has no row for, are one line)."""
        if data.text is not None and int(model_args.get("vocab_size", data.text.vocab_size)) != data.text.vocab_size:
            raise ZooError(f"--arg vocab_size={model_args['vocab_size']} does not match the tokenizer "
                           f"({data.text.tokenizer}: {data.text.vocab_size} ids); drop --arg vocab_size (it follows "
                           "the tokenizer) or pass --hp tokenizer=... with that many ids")
        return super().build(spec, data, model_args)

    # --- training -----------------------------------------------------------------------------------

    def configure_optimizers(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, Any]:
        """AdamW; weight decay only on the matrices of the blocks (not on norms, biases or embeddings)."""
        hp = ctx.hyperparameters
        if str(hp.get("optimizer", "adamw")).lower() != "adamw":
            raise ZooError("the lm family trains with AdamW; drop --optimizer or pass --optimizer adamw")
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and n.startswith("blocks.")]
        ids = {id(p) for p in decay}
        rest = [p for p in model.parameters() if id(p) not in ids]
        groups = [{"params": decay, "weight_decay": float(hp["weight_decay"])}, {"params": rest, "weight_decay": 0.0}]
        return {"model": ClippedAdamW(groups, lr=float(hp["lr"]), betas=(float(hp.get("beta1", 0.9)),
                                      float(hp["beta2"])), grad_clip=float(hp["clip"]))}

    def lr_schedule(self, ctx: RunContext) -> LRSchedule:
        """Linear warm-up over ``--hp warmup=N`` steps (at most half the run, so a short one still decays), then
        cosine down to ``min_lr_ratio`` × lr at the run's last step."""
        hp = ctx.hyperparameters
        warmup = min(int(hp["warmup"]), ctx.budget.total_steps // 2)
        return LRSchedule("cosine", warmup_steps=warmup, floor=float(hp["min_lr_ratio"]))

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str,
                      ctx: RunContext) -> dict[str, torch.Tensor]:
        windows, _ = batch
        logits = model(windows[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
        return {"loss": loss}

    def evaluate(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        """Validation loss in nats per token, bits per byte and perplexity, over every validation window."""
        data, device = ctx.data, ctx.device
        total, count = 0.0, 0
        for start in range(0, len(data.x_val), EVAL_BATCH):
            windows = torch.from_numpy(data.x_val[start:start + EVAL_BATCH]).to(device)
            logits = model(windows[:, :-1]).float()
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1),
                                           reduction="sum"))
            count += windows[:, 1:].numel()
        nats = total / count
        bytes_per_token = data.info.text.bytes_per_token if data.info.text else 1.0
        return {"val_loss": nats, "val_bits_per_byte": nats / math.log(2) / bytes_per_token,
                "val_perplexity": math.exp(min(nats, 50.0))}

    def epoch_end(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        """Write the tokenizer into the run (once) and continuations of :data:`PROMPTS` for this epoch."""
        text, run_dir, epoch, device = ctx.data.info.text, ctx.run_dir, ctx.epoch, ctx.device
        if text is None or run_dir is None:
            return {}
        if not (run_dir / TOKENIZER_FILE).exists():
            _write_text(run_dir / TOKENIZER_FILE, text.tokenizer_json)
        generator = torch.Generator().manual_seed(epoch)  # its own RNG: the run's random state is untouched
        parts = []
        for prompt in PROMPTS:
            ids = encode(text.tokenizer_json, prompt).tolist()
            new = sample(model, ids, SAMPLE_TOKENS, generator, device, temperature=0.8, top_k=40)
            parts.append(f"--- prompt {prompt!r}\n{prompt}{decode(text.tokenizer_json, new)}\n")
        folder = run_dir / "samples"
        folder.mkdir(exist_ok=True)
        _write_text(folder / f"epoch-{epoch:03d}.txt", "\n".join(parts))
        return {}

    # --- explanations (`zoo explain`, the report) -------------------------------------------------------

    def token_model(self, model: torch.nn.Module, data: DataInfo) -> TokenModel | None:
        """Prompts through the run's tokenizer; Integrated Gradients along the token embedding (the position
        embedding is left out: it is the same for the prompt and its baseline); baseline token: a space."""
        if data.text is None:
            return None
        tokenizer_json = data.text.tokenizer_json
        space = encode(tokenizer_json, " ").tolist()
        gpt: GPT = model
        return TokenModel(encode=lambda text: encode(tokenizer_json, text).tolist(),
                          token_text=lambda token: decode(tokenizer_json, [token]),
                          embedding=gpt.embed, next_token_logits=lambda ids: gpt(ids)[:, -1, :],
                          baseline_token=space[0] if len(space) == 1 else 0, context=gpt.context)

    def report_sections(self, context: ReportContext) -> list[ReportSection]:
        """Token attributions of the next token after the start of the validation text."""
        from zoo.explain.report import token_attribution_section

        model, data = context.model_and_data()
        info = DataInfo.from_dict(dict(context.config["data"]))
        text = split_text(data.x_val)
        start = text.find("\n", 0, 2000) + 1
        return [token_attribution_section(model, self, info, text[start:start + REPORT_PROMPT_CHARS])]

    # --- export -------------------------------------------------------------------------------------

    def graphs(self, model: torch.nn.Module, data: DataInfo) -> list[GraphSpec]:
        """One graph for prefill (an empty cache, past length 0) and decoding (one token, the cache so far)."""
        if data.text is None:
            raise ZooError("this run has no tokenizer recorded; train it again with this zoo")
        text: TextInfo = data.text
        gpt: GPT = model
        past_names, present_names = cache_names(gpt.layers, "past"), cache_names(gpt.layers, "present")
        heads, head_dim, vocab = gpt.heads, gpt.head_dim, gpt.vocab_size

        def random_inputs(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
            # sequence 5 after a cache of 3: both above 1, so the exporter keeps the axes dynamic
            # (row r left-padded by r % 4 positions: the mask is checked too)
            ids = rng.integers(0, vocab, (batch, 5), dtype=np.int64)
            mask = (np.arange(8)[None, :] >= (np.arange(batch) % 4)[:, None]).astype(np.int64)
            return (ids, mask, *(rng.standard_normal((batch, heads, 3, head_dim)).astype(np.float32)
                                 for _ in past_names))

        def real_inputs(splits: DataSplits) -> tuple[np.ndarray, ...]:
            # prefill: validation windows with an empty cache (past length 0)
            ids = encode(text.tokenizer_json, split_text(splits.x_val)[:20_000])
            length = min(text.context, 64)
            windows = token_windows(ids, length)[:8, :length]
            empty = np.zeros((len(windows), heads, 0, head_dim), np.float32)
            return (windows, np.ones(windows.shape, np.int64), *(empty for _ in past_names))

        spec = {"tokenizer_file": f"{GRAPH}/{TOKENIZER_FILE}", "tokenizer": text.tokenizer, "vocab_size": vocab,
                "context": gpt.context, "layers": gpt.layers, "heads": heads, "head_dim": head_dim,
                "input": "input_ids", "attention_mask": "attention_mask", "logits": "logits", "past": past_names,
                "present": present_names,
                "bytes_per_token": text.bytes_per_token}
        axes = {"input_ids": {1: "seq"}, "attention_mask": {1: "total"}, "logits": {1: "seq"},
                **{n: {2: "past"} for n in past_names},
                **{n: {2: "total"} for n in present_names}}
        params = sum(p.numel() for p in gpt.parameters())
        return [GraphSpec(name=GRAPH, module=cached_gpt(gpt), input_names=["input_ids", "attention_mask", *past_names],
                          output_names=["logits", *present_names], random_inputs=random_inputs,
                          real_inputs=real_inputs, metadata={LM_KEY: json.dumps(spec)}, role=ROLE, role_info=spec,
                          dynamic_axes=axes, external_data=params > EXTERNAL_DATA_PARAMS,
                          files={TOKENIZER_FILE: text.tokenizer_json.encode()},
                          # decoding reads every weight per token: int8 weights read a quarter of the bytes
                          int8_weight_only=True,
                          # logits of a trained model run to tens, summed over a whole context: fp32
                          # reordering differs by ~1e-5 there (2.6e-5 measured on gpt-micro after 8 epochs)
                          atol=LOGITS_TOLERANCE, rtol=LOGITS_TOLERANCE)]


@torch.no_grad()
def sample(model: GPT, prompt: list[int], new_tokens: int, generator: torch.Generator, device: Any, *,
           temperature: float = 1.0, top_k: int = 0) -> list[int]:
    """Sample a continuation of ``prompt`` with the cache (stops at the model's context)."""
    prompt = prompt[-(model.context - 1):] or [0]
    tokens = torch.tensor([prompt], device=device)
    past = model.empty_cache(1, device)
    out: list[int] = []
    for _ in range(min(new_tokens, model.context - len(prompt))):
        logits, past = model.forward_cached(tokens, past)
        step = logits[0, -1].float().cpu() / max(temperature, 1e-6)
        if top_k:
            kth = torch.topk(step, min(top_k, len(step))).values[-1]
            step = step.masked_fill(step < kth, float("-inf"))
        nxt = int(torch.multinomial(torch.softmax(step, -1), 1, generator=generator))
        out.append(nxt)
        tokens = torch.tensor([[nxt]], device=device)
    return out


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
