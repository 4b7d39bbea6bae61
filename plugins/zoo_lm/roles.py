"""The ``lm`` graph role's handlers (``zoo.role_handlers`` API): the int8/fp16 gate on token agreement and
next-token loss; ``zoo deploy`` of the key/value-cache loop with its ``tokenizer.json`` for python, node and the
web. No torch."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import resources
from typing import Any

import numpy as np

from zoo.role_handlers import (
    Bundle,
    DeployPlan,
    DeployRequest,
    DeployVectors,
    GateEvidence,
    GateResult,
    GenerateRequest,
    GraphEntry,
    RoleHandlers,
    TextGenerator,
)

#: What each target's folder gets from ``templates/``, and the packages its program needs.
PROGRAMS = {"python": ["run.py"], "node": ["run.js"], "web": ["index.html", "main.js"]}
NPM_PACKAGES = {"node": {"onnxruntime-node": "^1.20.0", "@huggingface/tokenizers": "^0.2.0"},
                "web": {"onnxruntime-web": "^1.20.0", "@huggingface/tokenizers": "^0.2.0"}}
PIP_PACKAGES = ("onnxruntime>=1.20", "tokenizers>=0.20", "numpy")
#: The deployed program checks itself on this prompt (several lines, indented: the line-by-line tokenisation
#: matters there) and this many greedy tokens.
CHECK_PROMPT = "def add(a, b):\n    return a + b\n\nThe "
CHECK_TOKENS = 24
TOKENIZATION = ("line by line: the text is split after every newline, each piece encoded on its own "
                "(no special tokens) and the ids joined")

#: A variant's greedy next token must agree with the fp32 graph's at least this often (real windows).
MIN_TOKEN_AGREEMENT = 0.9
#: A variant's bits per byte on held-out text (its mean next-token loss, scaled) may grow by at most this share of
#: the fp32 graph's.
MAX_LOSS_GROWTH = 0.01


def next_token_loss(logits: np.ndarray, ids: np.ndarray) -> float:
    """Mean cross-entropy in nats of each position's logits [N, T, V] against the next token of ``ids`` [N, T]."""
    logits = np.asarray(logits[:, :-1], np.float64)
    top = logits.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(axis=-1)) + top[..., 0]
    picked = np.take_along_axis(logits, np.asarray(ids)[:, 1:, None].astype(np.int64), axis=-1)[..., 0]
    return float((log_z - picked).mean())


class LMGenerator(TextGenerator):
    """``zoo serve``'s completions on this plugin's generation loop (:class:`zoo_lm.generate.LMSession`): the same
    tokenisation, key/value cache and sampling as ``zoo generate``."""

    def __init__(self, bundle: Bundle, graph: GraphEntry) -> None:
        from zoo_lm.generate import LMSession

        self.lm = LMSession(bundle.path, variant=graph.variant)
        self.context = self.lm.context

    def encode(self, text: str) -> list[int]:
        return self.lm.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.lm.tokenizer.decode(list(ids))

    def generate(self, request: GenerateRequest, on_token: Callable[[int], None]) -> list[int]:
        from zoo_lm.generate import Sampling

        sampling = Sampling(temperature=request.temperature, top_k=request.top_k, top_p=request.top_p,
                            seed=request.seed)
        sampling.check()
        return self.lm.generate([list(request.prompt_ids)], request.max_new_tokens, sampling,
                                lambda _, token: on_token(token))[0]

    def generate_batch(self, requests: Sequence[GenerateRequest], on_token: Callable[[int, int], None],
                       finished: Callable[[int], bool] | None = None) -> list[list[int]]:
        """Requests that differ only in their prompts (one API request's list) decode as one left-padded batch,
        each row what its prompt gives alone; others one after another."""
        from zoo_lm.generate import Sampling

        first = requests[0]
        if any(replace(r, prompt_ids=first.prompt_ids) != first for r in requests):
            return super().generate_batch(requests, on_token, finished)
        sampling = Sampling(temperature=first.temperature, top_k=first.top_k, top_p=first.top_p, seed=first.seed)
        sampling.check()
        return self.lm.generate([list(r.prompt_ids) for r in requests], first.max_new_tokens, sampling, on_token,
                                finished)


class LMHandlers(RoleHandlers):
    """Cached decoder-only language models."""

    def generate(self, bundle: Bundle, graph: GraphEntry) -> LMGenerator:
        """The graph's generation loop, loaded once (``zoo serve``'s ``/v1/completions``)."""
        return LMGenerator(bundle, graph)

    def deploy(self, request: DeployRequest) -> DeployPlan:
        """The graph as it is (its cache inputs and outputs are the program's loop), ``tokenizer.json`` beside it,
        and a program that tokenises line by line, prefills, then feeds one token at a time with the cache."""
        from zoo_lm.generate import LMSession, Sampling

        graph = request.graph
        _copy_graph(request, graph)
        info = graph.role_info
        shutil.copyfile(request.bundle.file(info["tokenizer_file"]), request.folder / "tokenizer.json")
        (request.folder / "tokenizer_config.json").write_text("{}\n")  # what tokenizers.js reads beside it
        lm = LMSession(request.bundle.path)
        prompt = lm.encode(CHECK_PROMPT)
        tokens = lm.generate([prompt], CHECK_TOKENS, Sampling(temperature=0.0))[0]
        manifest = request.bundle.manifest
        deployed = {"model": manifest.model, "family": manifest.family, "graph": graph.name, "kind": "lm",
                    "role": graph.role, "tokenizer": "tokenizer.json", "tokenization": TOKENIZATION,
                    **{key: info[key] for key in ("input", "logits", "past", "present", "heads", "head_dim",
                                                  "context", "vocab_size")},
                    "attention_mask": info.get("attention_mask"),  # None: a bundle from before the mask
                    "check": {"prompt": CHECK_PROMPT, "max_new_tokens": CHECK_TOKENS}}
        vectors = DeployVectors({"prompt_ids": np.asarray([prompt], np.int64)},
                                {"tokens": np.asarray([tokens], np.int64)}, {"tokens": 0})
        templates = resources.files("zoo_lm") / "templates"
        return DeployPlan(deployed, {name: (templates / name).read_text() for name in PROGRAMS[request.target]},
                          _readme(request.target, deployed), vectors, NPM_PACKAGES.get(request.target, {}),
                          PIP_PACKAGES)

    def gate(self, evidence: GateEvidence) -> GateResult:
        """Greedy-token agreement with the fp32 graph and growth of the next-token loss, on real token windows."""
        rule = (f"token agreement ≥ {100 * MIN_TOKEN_AGREEMENT:g}%, bits per byte (next-token loss) growth ≤ "
                f"{100 * MAX_LOSS_GROWTH:g}%")
        source, output = evidence.role_info.get("input"), evidence.role_info.get("logits")
        for case in evidence.real_cases():
            if source not in case.inputs or output not in case.reference:
                continue
            ref, got, ids = case.reference[output], case.outputs[output], case.inputs[source]
            agreement = float((ref.argmax(axis=-1) == got.argmax(axis=-1)).mean())
            loss, variant_loss = next_token_loss(ref, ids), next_token_loss(got, ids)
            growth = (variant_loss - loss) / loss if loss > 0 else 0.0
            metrics = {"token_agreement": agreement, "reference_loss": loss, "loss": variant_loss,
                       "loss_growth": growth}
            per_token = evidence.role_info.get("bytes_per_token")
            if per_token:  # the same growth, in the units the run reports (val_bits_per_byte)
                metrics.update(reference_bits_per_byte=loss / np.log(2) / per_token,
                               bits_per_byte=variant_loss / np.log(2) / per_token)
            return GateResult(agreement >= MIN_TOKEN_AGREEMENT and growth <= MAX_LOSS_GROWTH, rule, metrics)
        return GateResult(True, rule)


def _copy_graph(request: DeployRequest, graph: GraphEntry) -> None:
    """``model.onnx`` (and its external weights, under the names the graph refers to) into the folder."""
    shutil.copyfile(request.bundle.graph_path(graph), request.folder / "model.onnx")
    source = request.bundle.graph_path(graph).parent
    for relative in graph.external_data:
        name = relative.rsplit("/", 1)[-1]
        shutil.copyfile(source / name, request.folder / name)


def _readme(target: str, info: dict[str, Any]) -> str:
    run = {"python": ("pip install -r requirements.txt", 'python run.py --prompt "The " --max-new-tokens 50',
                      "python run.py --check"),
           "node": ("ONNXRUNTIME_NODE_INSTALL=skip npm install   # the CPU build ships in the package",
                    'node run.js --prompt "The " --max-new-tokens 50', "node run.js --check"),
           "web": ("npm install   # onnxruntime-web and tokenizers.js, served from node_modules (no CDN)",
                   "python -m http.server 8000   # then open http://127.0.0.1:8000/?prompt=The%20",
                   "open http://127.0.0.1:8000/?check=1")}[target]
    mask = ""
    if info.get("attention_mask"):
        mask = (f", and `{info['attention_mask']}` [batch, cache + new tokens] (1: a real token, 0: left padding of "
                "a shorter prompt in a batch; this program runs one prompt, so all ones)")
    return f"""# {info['model']} (language model) for {target}

`model.onnx` is the model with its key/value cache as inputs (`{', '.join(info['past'])}`) and outputs
(`{', '.join(info['present'])}`){mask}; `tokenizer.json` is its tokenizer. The program tokenises the prompt
{info['tokenization']}, runs it once with an empty cache (past length 0), then feeds each new token alone with
the cache so far, choosing the likeliest token (greedy), up to the context of {info['context']} tokens.
The tokens are those of `zoo generate --temperature 0`.

```
{run[0]}
{run[1]}
{run[2]}   # the prompt in deploy.json must give vectors/ prompt_ids, then exactly the greedy tokens
```
"""
