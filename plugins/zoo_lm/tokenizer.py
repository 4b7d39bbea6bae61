"""Tokenizers as ``tokenizers``-library JSON: byte-level (the default, 256 ids = the bytes) or a trained BPE.

Both are written in the same ``tokenizer.json`` format, so ``zoo generate`` reads either with one call
(``tokenizers.Tokenizer.from_str``), and both map text ↔ UTF-8 bytes losslessly (byte-level pre-tokenizer).

Text is tokenised **line by line**: split after every ``"\n"`` (:func:`lines`), each piece encoded on its own, the
ids joined. Training, evaluation, ``zoo generate`` and the deployed programs (python, node, web) all do exactly
this, so a multi-line prompt becomes the same tokens everywhere (the byte-level pre-tokenizer's regex would
otherwise merge a newline with the next line's indentation when given the whole text).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError

BYTES = "bytes"


FILE = "file"


def parse_tokenizer(value: object) -> tuple[str, int | str]:
    """``"bytes"`` → ("bytes", 256); ``"bpe:N"`` → ("bpe", N) with 260 ≤ N ≤ 65536; a path to a ``tokenizer.json``
    (a Hugging Face tokenizer, GPT-2's for example) → ("file", path)."""
    raw = str(value).strip()
    text = raw.lower()
    if text == BYTES:
        return BYTES, 256
    kind, _, size = text.partition(":")
    if kind == "bpe" and size.isdigit() and 260 <= int(size) <= 65536:
        return "bpe", int(size)
    if text.endswith(".json"):
        return FILE, raw
    raise ZooError(f"--hp tokenizer={value!r} is not a tokenizer; use tokenizer=bytes, tokenizer=bpe:N "
                   "(N from 260 to 65536, the vocabulary size) or tokenizer=PATH/tokenizer.json")


def read_tokenizer_file(path: str) -> str:
    """The JSON of a ``tokenizers`` tokenizer file, checked by loading it (one line naming the file otherwise)."""
    from tokenizers import Tokenizer

    file = Path(path).expanduser()
    if not file.is_file():
        raise ZooError(f"--hp tokenizer={path}: no such file; give the tokenizer.json of a Hugging Face tokenizer")
    try:
        text = file.read_text(encoding="utf-8")
        Tokenizer.from_str(text)
    except Exception as exc:  # OSError, UnicodeDecodeError, and the library's own plain Exception
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ZooError(f"--hp tokenizer={path} is not a tokenizers tokenizer.json ({first})") from exc
    return text


def lines(text: str) -> list[str]:
    """``text`` split after every ``"\n"`` (the newline kept; no empty pieces): what is tokenised on its own."""
    return [piece for piece in re.split(r"(?<=\n)", text) if piece]


@functools.cache
def _byte_alphabet() -> list[str]:
    """GPT-2's byte → printable character table, which the byte-level pre-tokenizer uses."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = ByteLevel.alphabet()
    # The alphabet is a set: order it by the byte each character stands for (GPT-2's bytes_to_unicode).
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    assert set(table.values()) == set(chars)
    return [table[b] for b in range(256)]


def _byte_level(model: object) -> object:
    from tokenizers import Tokenizer, decoders, pre_tokenizers

    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def byte_tokenizer_json() -> str:
    """A BPE with no merges over the 256 byte characters, id = byte value: plain UTF-8 bytes as tokens."""
    from tokenizers.models import BPE

    vocab = {char: b for b, char in enumerate(_byte_alphabet())}
    return _byte_level(BPE(vocab=vocab, merges=[])).to_str()


def train_bpe_json(text: str, vocab_size: int) -> str:
    """A byte-level BPE of ``vocab_size`` ids trained on ``text`` (the ids 0–255 stay the bytes)."""
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    tokenizer = _byte_level(BPE())
    trainer = BpeTrainer(vocab_size=vocab_size, initial_alphabet=_byte_alphabet(), show_progress=False,
                         special_tokens=[])
    _within_memory_limit(TRAIN_BYTES_PER_CHAR * len(text), f"training a BPE tokenizer on {len(text) >> 20} MB of text")
    tokenizer.train_from_iterator(pieces(text), trainer=trainer)
    return tokenizer.to_str()


#: What the library may need beyond what the process holds, per character of text it learns a BPE from (its word
#: counts and pair statistics; measured well under this) and, for one ``encode_batch`` call, in all.
TRAIN_BYTES_PER_CHAR = 4
ENCODE_BYTES = 64 << 20


def _within_memory_limit(size: int, what: str) -> None:
    """The tokenizers library is Rust: a failed allocation aborts the process (exit 134, a Rust backtrace) instead
    of raising. Under an address-space limit (``ulimit -v``) refuse in one line before a call that may not fit,
    and keep the library on this thread (each worker thread's malloc arena reserves 64 MB of address space,
    which alone aborted a run under a 900 MB limit)."""
    from zoo.faults import address_space_left, need_memory

    if address_space_left() is None:
        return
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    need_memory(size + (64 << 20), what)


#: The longest piece of text handed to the tokenizers library at once. One 50 MB line made its BPE trainer
#: abort the process (a Rust allocation failure, exit 134) under a memory limit; pieces keep it bounded.
MAX_PIECE = 1 << 16


def pieces(text: str, limit: int = MAX_PIECE) -> Iterator[str]:
    """``text`` line by line (:func:`lines`), a line longer than ``limit`` cut into pieces of at most ``limit``
    characters, each cut just before a space that starts a word, so the byte-level pre-tokenizer splits the pieces
    exactly as it splits the line (a line without such a space is cut at ``limit``)."""
    for line in lines(text):
        start = 0
        while len(line) - start > limit:
            cut = line.rfind(" ", start + 1, start + limit)
            while cut > start and line[cut - 1].isspace():  # keep a run of spaces with the word it precedes
                cut -= 1
            cut = cut if cut > start else start + limit
            yield line[start:cut]
            start = cut
        yield line[start:]


def encode(tokenizer_json: str, text: str) -> np.ndarray:
    """Token ids of ``text`` (int64); byte tokenizers skip the library (the ids are the bytes)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    if tokenizer.get_vocab_size() == 256:
        return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int64)
    return encode_array(tokenizer, text)


#: The most characters handed to one ``encode_batch`` call. The library keeps tens of bytes per token of a
#: call's results (ids, offsets, token strings): a thousand 64 kB pieces of one 50 MB line took 1.7 GB and, under
#: a memory limit, aborted the process from Rust (exit 134). A megabyte a call keeps that to tens of MB.
MAX_BATCH_CHARS = 1 << 20


def _batches(text: str) -> Iterator[list[str]]:
    """:func:`pieces` of ``text`` in lists of at most about :data:`MAX_BATCH_CHARS` characters."""
    batch: list[str] = []
    size = 0
    for piece in pieces(text):
        batch.append(piece)
        size += len(piece)
        if size >= MAX_BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def encode_array(tokenizer: Any, text: str) -> np.ndarray:
    """Token ids (int64) of ``text`` with a loaded ``tokenizers.Tokenizer``, line by line (:func:`lines`), a long
    line in bounded pieces (:func:`pieces`), about a megabyte of text per call (:data:`MAX_BATCH_CHARS`)."""
    run = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # no offsets: the same ids, less memory
    parts = []
    for batch in _batches(text):
        _within_memory_limit(ENCODE_BYTES, "tokenizing the text")
        parts.append(np.fromiter((i for enc in run(batch, add_special_tokens=False) for i in enc.ids), np.int32))
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def encode_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` as a list (:func:`encode_array`)."""
    return [int(i) for i in encode_array(tokenizer, text)]


def token_bytes(tokenizer: Any, token: int) -> bytes:
    """The UTF-8 bytes a byte-level token stands for (its characters mapped back through the byte alphabet), so
    text can be streamed token by token without splitting a character."""
    table = _char_to_byte()
    return bytes(table[c] for c in (tokenizer.id_to_token(token) or "") if c in table)


@functools.cache
def _char_to_byte() -> dict[str, int]:
    return {char: byte for byte, char in enumerate(_byte_alphabet())}


def decode(tokenizer_json: str, ids: list[int]) -> str:
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json).decode(ids)
