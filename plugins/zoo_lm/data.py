"""Text datasets: the embedded Python language reference (``pydoc_data.topics``) and a user's UTF-8 text."""

from __future__ import annotations

from pathlib import Path

from zoo.data import RawText
from zoo.errors import ZooError

#: Files read from a ``text:DIR`` folder (recursively, in sorted order).
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")


def load_pydoc_topics(seed: int = 0, val_fraction: float = 0.1) -> RawText:
    """The language reference's topics that ship with every CPython (``pydoc_data.topics``), about 466 KB."""
    from pydoc_data.topics import topics

    return RawText("".join(topics[key] for key in sorted(topics)), "pydoc_data.topics")


def load_text(path: str, seed: int = 0, val_fraction: float = 0.1) -> RawText:
    """``text:FILE`` (one UTF-8 file) or ``text:DIR`` (its .txt/.md/.rst files, recursively, joined)."""
    root = Path(path).expanduser()
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise ZooError(f"text:{path}: the folder has no {', '.join(TEXT_SUFFIXES)} files")
    elif root.is_file():
        files = [root]
    else:
        raise ZooError(f"text:{path}: no such file or folder")
    parts = []
    for file in files:
        try:
            parts.append(file.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ZooError(f"text:{path}: {file} is not UTF-8 text (byte {exc.start}); convert it to UTF-8") from exc
        except OSError as exc:
            raise ZooError(f"text:{path}: cannot read {file} ({exc.strerror})") from exc
    text = "\n".join(parts)
    if not text.strip():
        raise ZooError(f"text:{path}: the text is empty; give UTF-8 text with some content")
    return RawText(text, f"text:{path}")
