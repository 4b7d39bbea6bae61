"""``zoo generate`` (this plugin's command): text from a language-model bundle with ONNX Runtime, numpy and
``tokenizers`` alone.

No torch: the bundle's graph (role ``lm``) carries its key/value cache as explicit inputs and outputs, and its
``role_info`` names the tokenizer file, the cache layout and the context length. Prompts are tokenised by
:func:`zoo_lm.tokenizer.encode`, exactly as training tokenised its text. Prefill is one call with an empty cache
(past length 0); each new token is one call with the cache so far. Several prompts run as one batch: the shorter
ones are left-padded, and the graph's ``attention_mask`` keeps padding out of attention and positions.
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
        raise ZooError(f"{bundle} has no {variant} language-model graph; pass --variant with one it has: "
                       f"{', '.join(sorted(g.variant for g in found))}")
    return opened.graph_path(chosen[0]), dict(chosen[0].role_info)


class LMSession:
    """One ONNX Runtime session over a cached LM graph: prefill, then one token at a time, for a batch of prompts
    of any lengths (left padding and the graph's attention mask)."""

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
        #: The graph's attention-mask input (bundles exported before it have none: equal-length batches only).
        self.mask_input: str | None = self.spec.get("attention_mask")
        self.slides = 0  # how often the last generate() slid a window (all rows together)
        self.row_slides: list[int] = []  # and per row

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, tokenised as training tokenised (:func:`zoo_lm.tokenizer.encode_ids`)."""
        return encode_ids(self.tokenizer, text)

    def empty_cache(self, batch: int) -> dict[str, np.ndarray]:
        shape = (batch, self.spec["heads"], 0, self.spec["head_dim"])
        return {name: np.zeros(shape, np.float32) for name in self.spec["past"]}

    def step(self, ids: np.ndarray, cache: dict[str, np.ndarray], mask: np.ndarray | None = None
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits of the last position [batch, vocab] and the extended cache. ``mask`` [batch, past + seq] marks
        the real tokens of the cache and ``ids`` (0: left padding); left out, every token is real."""
        outputs = self.session.run(None, self._feeds(ids, cache, mask))
        return outputs[0][:, -1], dict(zip(self.spec["past"], outputs[1:], strict=True))

    def _feeds(self, ids: np.ndarray, cache: dict[str, np.ndarray], mask: np.ndarray | None) -> dict[str, np.ndarray]:
        feeds = {self.spec["input"]: np.asarray(ids, np.int64), **cache}
        if self.mask_input:
            total = self._past(cache) + ids.shape[1]
            feeds[self.mask_input] = np.ones((len(ids), total), np.int64) if mask is None else mask
        elif mask is not None and not mask.all():
            raise ZooError(f"{self.bundle} was exported before the attention mask, so its prompts of one batch must "
                           "have the same number of tokens; export the run again (zoo export RUN)")
        return feeds

    def mean_nll(self, windows: np.ndarray, batch: int = 8) -> float:
        """Mean next-token loss in nats over token windows [N, T+1] (prefill with an empty cache)."""
        total, count = 0.0, 0
        for start in range(0, len(windows), batch):
            chunk = windows[start:start + batch]
            outputs = self.session.run(None, self._feeds(chunk[:, :-1], self.empty_cache(len(chunk)), None))
            logits = outputs[0].astype(np.float64)
            top = logits.max(axis=-1, keepdims=True)
            log_z = np.log(np.exp(logits - top).sum(axis=-1)) + top[..., 0]
            picked = np.take_along_axis(logits, chunk[:, 1:, None], axis=-1)[..., 0]
            total += float((log_z - picked).sum())
            count += picked.size
        return total / count

    def generate(self, prompts: list[list[int]], max_new_tokens: int, sampling: Sampling,
                 on_token: Callable[[int, int], None] | None = None,
                 finished: Callable[[int], bool] | None = None) -> list[list[int]]:
        """New tokens for each of ``prompts`` (token ids, any lengths: decoded as one batch, the shorter ones
        left-padded and masked), exactly ``max_new_tokens`` per row unless ``finished(row)`` says that row is done
        (asked after ``on_token(row, token)``); a finished row leaves the batch. Each row's tokens are those the
        prompt gives alone: greedy ones equal, and sampling draws from a generator of its own seeded by
        ``sampling.seed``.

        When a row's context fills, its window slides: the last half of its context (prompt and tokens so far) is
        kept, and the batch is prefilled again into an empty cache (the other rows with all their tokens, so each row
        slides exactly when it would alone; learned positions cannot shift, so a cache cannot be trimmed). How often
        is :attr:`row_slides` (and :attr:`slides`, all rows together) after the call."""
        rows = [list(p) for p in prompts]  # each row's whole sequence, for re-prefilling after a slide
        out: list[list[int]] = [[] for _ in prompts]
        rngs = [np.random.default_rng(sampling.seed) for _ in prompts]
        keep = max(1, self.context // 2)
        self.slides, self.row_slides = 0, [0] * len(prompts)
        live = list(range(len(prompts)))  # the rows still in the batch, in batch order
        ids, mask = left_pad(rows)  # mask: the cache's and the ids' real tokens
        cache = self.empty_cache(len(rows))
        for _ in range(max_new_tokens):
            if not live:
                break
            window = [int(real) for real in mask.sum(axis=1)]  # each row's tokens in the cache and ids
            full = [r for r, real in zip(live, window, strict=True) if real > self.context]
            if full:  # prefill again: the full rows keep the last half of their window, the others all of theirs
                for r in full:
                    self.row_slides[r] += 1
                self.slides += len(full)
                ids, mask = left_pad([rows[r][-(keep if r in full else real):]
                                      for r, real in zip(live, window, strict=True)])
                cache = self.empty_cache(len(live))
            logits, cache = self.step(ids, cache, mask)
            done = []
            for i, (r, row_logits) in enumerate(zip(live, logits, strict=True)):
                token = choose(row_logits, sampling, rngs[r])
                out[r].append(token)
                rows[r].append(token)
                if on_token:
                    on_token(r, token)
                if finished and finished(r):
                    done.append(i)
            ids = np.asarray([[rows[r][-1]] for r in live], np.int64)
            mask = np.concatenate([mask, np.ones((len(live), 1), np.int64)], axis=1)
            if done:
                live, ids, mask, cache = self._drop(done, live, ids, mask, cache)
        return out

    def _drop(self, done: list[int], live: list[int], ids: np.ndarray, mask: np.ndarray,
              cache: dict[str, np.ndarray]) -> tuple[list[int], np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The batch without the rows at ``done``, and without the leading positions that are padding in every
        row left (so a long finished row does not keep the others' cache long)."""
        kept = [i for i in range(len(live)) if i not in set(done)]
        if not kept:
            return [], ids[:0], mask[:0], cache
        mask = mask[kept]
        lead = int((np.cumsum(mask, axis=1) == 0).sum(axis=1).min())  # columns that are padding in every row
        cache = {name: value[kept][:, :, lead:] for name, value in cache.items()}
        return [live[i] for i in kept], ids[kept], mask[:, lead:], cache

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


def left_pad(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token rows of any lengths as one batch: ids [batch, longest] left-padded with 0, and the mask (1: a real
    token, 0: padding) the graph's ``attention_mask`` takes."""
    longest = max(len(row) for row in rows)
    ids, mask = np.zeros((len(rows), longest), np.int64), np.zeros((len(rows), longest), np.int64)
    for i, row in enumerate(rows):
        if row:
            ids[i, -len(row):], mask[i, -len(row):] = row, 1
    return ids, mask


class TextStream:
    """One row's text as its tokens arrive: ends at the end-of-text token (not part of the text) or before the first
    stop string; ``write`` (if any) receives it piece by piece, held back by the length of the longest stop string
    so none of one is ever written."""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], eot: int | None,
                 write: Callable[[str], None] | None = None) -> None:
        self.tokenizer, self.stops, self.eot, self.write = tokenizer, stops, eot, write
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.text, self.written, self.stopped = "", 0, "max_new_tokens"

    @property
    def done(self) -> bool:
        return self.stopped != "max_new_tokens"

    def add(self, token: int) -> None:
        """The next token's text (nothing once done)."""
        if self.done:
            return
        if token == self.eot:
            self.stopped = "end_of_text"
            return
        self.text += self.decoder.decode(token_bytes(self.tokenizer, token))
        found = [i for i in (self.text.find(s) for s in self.stops) if i >= 0]
        if found:  # cut before the earliest stop string, before anything of it is written
            self.text, self.stopped = self.text[:min(found)], "stop"
            return
        self._flush(len(self.text) - self.hold)  # a stop string may still be completing in the last characters

    def close(self) -> None:
        """The bytes still held (a character cut short is replaced) and the rest of the text, written."""
        if self.stopped != "stop":
            self.text += self.decoder.decode(b"", final=True)
        self._flush(len(self.text))

    def _flush(self, upto: int) -> None:
        if self.write and upto > self.written:
            self.write(self.text[self.written:upto])
            self.written = upto


def generate_texts(bundle: str | Path, prompts: list[str], *, max_new_tokens: int = 200,
                   sampling: Sampling | None = None, write: Callable[[str], None] | None = None,
                   stop: tuple[str, ...] = (), threads: int = 0, variant: str = "fp32") -> list[dict[str, Any]]:
    """Continue each of ``prompts``, decoded as one batch (:meth:`LMSession.generate`); one result per prompt, in
    order, each what that prompt gives alone. Each row ends on its own after ``max_new_tokens`` tokens, at the
    tokenizer's end-of-text token (not part of the text), or at the first of the ``stop`` strings (the text ends
    before it). Past the context a row's window slides (``slides``). ``write`` (one prompt only) receives the prompt,
    then the text piece by piece as tokens arrive, never any of a stop string. ``threads`` fixes ONNX Runtime's
    intra-op threads (0: its default); ``variant`` picks the bundle's graph (``fp32``, or ``int8`` for int8 weights
    when it was exported with ``--quantize int8``)."""
    sampling = sampling or Sampling()
    sampling.check()
    if not prompts:
        raise ZooError("give a prompt: --prompt TEXT (repeatable) or --prompts-file FILE")
    name = [f"--prompt {n}" if len(prompts) > 1 else "--prompt" for n in range(1, len(prompts) + 1)]
    for which, prompt in zip(name, prompts, strict=True):
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError as exc:  # bytes that are not UTF-8 arrive as lone surrogates
            raise ZooError(f"{which} is not valid UTF-8 (at character {exc.start}); pass UTF-8 text") from exc
    if max_new_tokens <= 0:
        raise ZooError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if threads < 0:
        raise ZooError(f"--threads must be 0 (ONNX Runtime's default) or more, got {threads}")
    stops = tuple(s for s in stop if s)
    if len(stops) != len(stop):
        raise ZooError("--stop must not be empty; give the text that ends generation")
    if write and len(prompts) > 1:
        raise ZooError("streaming writes one prompt's text; several prompts are returned when the batch ends")
    lm = LMSession(bundle, threads=threads, variant=variant)
    ids = [lm.encode(prompt) for prompt in prompts]
    empty = [which for which, row in zip(name, ids, strict=True) if not row]
    if empty:
        raise ZooError(f"{empty[0]} is empty; give some text to continue")
    eot = lm.end_of_text()
    streams = [TextStream(lm.tokenizer, stops, eot, write) for _ in prompts]
    if write:
        write(prompts[0])
    new = lm.generate(ids, max_new_tokens, sampling, lambda row, token: streams[row].add(token),
                      lambda row: streams[row].done)
    results = []
    for prompt, row_ids, tokens, stream, slides in zip(prompts, ids, new, streams, lm.row_slides, strict=True):
        stream.close()
        if stream.stopped == "end_of_text":
            tokens = tokens[:-1]
        results.append({"prompt": prompt, "text": stream.text, "tokens": tokens, "prompt_tokens": len(row_ids),
                        "new_tokens": len(tokens), "stopped": stream.stopped, "slides": slides,
                        "context": lm.context, "temperature": sampling.temperature, "top_k": sampling.top_k,
                        "top_p": sampling.top_p, "seed": sampling.seed, "threads": threads,
                        "variant": variant})
    return results


def generate_text(bundle: str | Path, prompt: str, *, max_new_tokens: int = 200, sampling: Sampling | None = None,
                  write: Callable[[str], None] | None = None, stop: tuple[str, ...] = (), threads: int = 0,
                  variant: str = "fp32") -> dict[str, Any]:
    """Continue one ``prompt`` (:func:`generate_texts` with one prompt)."""
    return generate_texts(bundle, [prompt], max_new_tokens=max_new_tokens, sampling=sampling, write=write, stop=stop,
                          threads=threads, variant=variant)[0]
