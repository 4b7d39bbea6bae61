"""``zoo generate`` (this plugin's command): text from a language-model bundle with ONNX Runtime, numpy and
``tokenizers`` alone.

No torch: the bundle's graph (role ``lm``) carries its key/value cache as explicit inputs and outputs, and its
``role_info`` names the tokenizer file, the cache layout and the context length. Prompts are tokenised by
:func:`zoo_lm.tokenizer.encode`, exactly as training tokenised its text. Prefill is one call with an empty cache
(past length 0); each new token is one call with the cache so far.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo_lm.tokenizer import encode_ids, token_bytes

#: This plugin's graph role (``lm:lm``; bundles from before roles were namespaced say ``lm``).
ROLE = "lm:lm"


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: greedy at temperature 0, else sampled from the (top-k, top-p) softmax."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def check(self) -> None:
        if not 0 <= self.temperature < float("inf"):
            raise ZooError(f"--temperature must be 0 (greedy) or more, got {self.temperature}")
        if self.top_k < 0:
            raise ZooError(f"--top-k must be 0 (off) or more, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ZooError(f"--top-p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.seed < 2**63:
            raise ZooError(f"--seed must be from 0 to 2**63-1, got {self.seed}")


def lm_graph(bundle: Path, *, variant: str = "fp32") -> tuple[Path, dict[str, Any]]:
    """The path of the bundle's language-model graph (hashes checked by ``Bundle.open``) and its role_info (the
    tokenizer file, the cache layout, the names)."""
    from zoo.role_handlers import Bundle

    opened = Bundle.open(bundle)
    found = opened.manifest.with_role(ROLE, variant=None)
    if not found:
        raise ZooError(f"{bundle} holds no language-model graph (family {opened.manifest.family!r}; graph roles: "
                       f"{', '.join(opened.manifest.roles())}); zoo generate works on lm bundles "
                       "(zoo train gpt-nano --data pydoc-topics --export)")
    chosen = [g for g in found if g.variant == variant]
    if not chosen:
        raise ZooError(f"{bundle} has no {variant} language-model graph (it has: "
                       f"{', '.join(sorted(g.variant for g in found))})")
    return opened.graph_path(chosen[0]), dict(chosen[0].role_info)


class LMSession:
    """One ONNX Runtime session over a cached LM graph: prefill, then one token at a time."""

    def __init__(self, bundle: str | Path, *, variant: str = "fp32", threads: int = 0) -> None:
        from tokenizers import Tokenizer

        from zoo.ort import CPU, session

        self.bundle = Path(bundle)
        if not self.bundle.is_dir():
            raise ZooError(f"bundle {self.bundle} does not exist; pass the folder that `zoo export` printed")
        path, self.spec = lm_graph(self.bundle, variant=variant)
        self.tokenizer = _read_tokenizer(Tokenizer, self.bundle / str(self.spec.get("tokenizer_file")))
        self.session = session(str(path), CPU, threads=threads)
        self.context = int(self.spec["context"])
        self.slides = 0  # how often the last generate() slid its window

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, tokenised as training tokenised (:func:`zoo_lm.tokenizer.encode_ids`)."""
        return encode_ids(self.tokenizer, text)

    def empty_cache(self, batch: int) -> dict[str, np.ndarray]:
        shape = (batch, self.spec["heads"], 0, self.spec["head_dim"])
        return {name: np.zeros(shape, np.float32) for name in self.spec["past"]}

    def step(self, ids: np.ndarray, cache: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits of the last position [batch, vocab] and the extended cache."""
        outputs = self.session.run(None, {self.spec["input"]: ids.astype(np.int64), **cache})
        return outputs[0][:, -1], dict(zip(self.spec["past"], outputs[1:], strict=True))

    def mean_nll(self, windows: np.ndarray, batch: int = 8) -> float:
        """Mean next-token loss in nats over token windows [N, T+1] (prefill with an empty cache)."""
        total, count = 0.0, 0
        for start in range(0, len(windows), batch):
            chunk = windows[start:start + batch]
            outputs = self.session.run(None, {self.spec["input"]: chunk[:, :-1].astype(np.int64),
                                              **self.empty_cache(len(chunk))})
            logits = outputs[0].astype(np.float64)
            top = logits.max(axis=-1, keepdims=True)
            log_z = np.log(np.exp(logits - top).sum(axis=-1)) + top[..., 0]
            picked = np.take_along_axis(logits, chunk[:, 1:, None], axis=-1)[..., 0]
            total += float((log_z - picked).sum())
            count += picked.size
        return total / count

    def generate(self, prompts: list[list[int]], max_new_tokens: int, sampling: Sampling,
                 on_token: Callable[[int, list[int]], None] | None = None,
                 should_stop: Callable[[list[list[int]]], bool] | None = None) -> list[list[int]]:
        """New tokens for a batch of equal-length prompts (no padding mask): exactly ``max_new_tokens`` unless
        ``should_stop(tokens so far)`` says stop. When the context fills, the window slides: the last half of the
        context (prompt and tokens so far) is prefilled again into an empty cache and generation goes on; how many
        times is :attr:`slides` after the call (learned positions cannot shift, so the cache cannot be trimmed)."""
        if len({len(p) for p in prompts}) != 1:
            raise ZooError("prompts of one batch must have the same number of tokens")
        rng = np.random.default_rng(sampling.seed)
        rows = [list(p) for p in prompts]  # each row's whole sequence, for re-prefilling after a slide
        keep = max(1, self.context // 2)
        self.slides = 0
        ids, cache = np.asarray(prompts, np.int64), self.empty_cache(len(prompts))
        out: list[list[int]] = [[] for _ in prompts]
        for index in range(max_new_tokens):
            if self._past(cache) + ids.shape[1] > self.context:
                ids, cache = np.asarray([row[-keep:] for row in rows], np.int64), self.empty_cache(len(rows))
                self.slides += 1
            logits, cache = self.step(ids, cache)
            chosen = [choose(row, sampling, rng) for row in logits]
            for seq, row, token in zip(out, rows, chosen, strict=True):
                seq.append(token)
                row.append(token)
            if on_token:
                on_token(index, chosen)
            if should_stop and should_stop(out):
                break
            ids = np.asarray(chosen, np.int64)[:, None]
        return out

    def _past(self, cache: dict[str, np.ndarray]) -> int:
        """How many positions the cache holds."""
        return int(next(iter(cache.values())).shape[2])

    def end_of_text(self) -> int | None:
        """The tokenizer's end-of-text token (``<|endoftext|>``, ``</s>``, ``<eos>``), if it has one."""
        for name in END_OF_TEXT:
            token = self.tokenizer.token_to_id(name)
            if token is not None:
                return int(token)
        return None


#: Special tokens that end a text, in the spellings of GPT-2, Llama/T5 and Gemma tokenizers.
END_OF_TEXT = ("<|endoftext|>", "</s>", "<eos>")


def _read_tokenizer(kind: Any, path: Path) -> Any:
    """The bundle's tokenizer; a missing or malformed file is one line naming it."""
    if not path.is_file():
        raise ZooError(f"tokenizer {path} is missing; copy the whole bundle folder or export it again")
    try:
        return kind.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exceptions with serde's message
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ZooError(f"tokenizer {path} cannot be read ({first[:200]}); export the bundle again") from exc


def choose(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """The next token: argmax at temperature 0, else a draw from the filtered softmax."""
    if sampling.temperature == 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / sampling.temperature
    if sampling.top_k:
        kth = np.sort(scaled)[-min(sampling.top_k, len(scaled))]
        scaled = np.where(scaled < kth, -np.inf, scaled)
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if sampling.top_p < 1:
        order = np.argsort(-probs)
        keep = np.cumsum(probs[order]) - probs[order] < sampling.top_p  # the smallest set reaching top_p
        mask = np.zeros_like(probs, dtype=bool)
        mask[order[keep]] = True
        probs = np.where(mask, probs, 0.0)
        probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))


def generate_text(bundle: str | Path, prompt: str, *, max_new_tokens: int = 200, sampling: Sampling | None = None,
                  write: Callable[[str], None] | None = None, stop: tuple[str, ...] = (), threads: int = 0
                  ) -> dict[str, Any]:
    """Continue ``prompt``; ``write`` receives the prompt, then the text piece by piece as tokens arrive.

    Generation ends after ``max_new_tokens`` tokens, at the tokenizer's end-of-text token (not part of the text), or
    at the first of the ``stop`` strings (the text ends before it; streamed text is held back by the length of the
    longest stop string so none of it is ever written). Past the context the window slides (``slides``).
    ``threads`` fixes ONNX Runtime's intra-op threads (0: its default)."""
    sampling = sampling or Sampling()
    sampling.check()
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:  # bytes that are not UTF-8 arrive as lone surrogates
        raise ZooError(f"--prompt is not valid UTF-8 (at character {exc.start}); pass UTF-8 text") from exc
    if max_new_tokens <= 0:
        raise ZooError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if threads < 0:
        raise ZooError(f"--threads must be 0 (ONNX Runtime's default) or more, got {threads}")
    stops = tuple(s for s in stop if s)
    if len(stops) != len(stop):
        raise ZooError("--stop must not be empty; give the text that ends generation")
    lm = LMSession(bundle, threads=threads)
    prompt_ids = lm.encode(prompt)
    if not prompt_ids:
        raise ZooError("--prompt is empty; give some text to continue")
    eot = lm.end_of_text()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    hold = max((len(s) for s in stops), default=1) - 1
    state = {"text": "", "written": 0, "stopped": "max_new_tokens"}
    if write:
        write(prompt)

    def flush(upto: int) -> None:
        if write and upto > state["written"]:
            write(state["text"][state["written"]:upto])
            state["written"] = upto

    def on_token(_: int, chosen: list[int]) -> None:
        if chosen[0] == eot:
            state["stopped"] = "end_of_text"
            return
        state["text"] += decoder.decode(token_bytes(lm.tokenizer, chosen[0]))
        found = [i for i in (state["text"].find(s) for s in stops) if i >= 0]
        if found:  # cut before the earliest stop string, before anything of it is written
            state["text"], state["stopped"] = state["text"][:min(found)], "stop"
            return
        flush(len(state["text"]) - hold)  # a stop string may still be completing in the last `hold` characters

    def should_stop(_: list[list[int]]) -> bool:
        return state["stopped"] != "max_new_tokens"

    new = lm.generate([prompt_ids], max_new_tokens, sampling, on_token, should_stop)[0]
    if state["stopped"] != "stop":
        state["text"] += decoder.decode(b"", final=True)
    flush(len(state["text"]))
    if state["stopped"] == "end_of_text":
        new = new[:-1]
    return {"prompt": prompt, "text": state["text"], "tokens": new, "prompt_tokens": len(prompt_ids),
            "new_tokens": len(new), "stopped": state["stopped"], "slides": lm.slides, "context": lm.context,
            "temperature": sampling.temperature, "top_k": sampling.top_k, "top_p": sampling.top_p,
            "seed": sampling.seed, "threads": threads}
