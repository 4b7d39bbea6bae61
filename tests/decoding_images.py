"""The shared test images of zoo's one decoding rule (zoo/data/decoding.py), written by the tests.

Every kind a user may hand over: 16-bit grey and colour, alpha (RGBA, LA, 16-bit RGBA), palettes with and
without transparency, low bit depths, grey with a transparent value, CMYK/grey/colour JPEG, odd sizes.
Pillow cannot write 16-bit colour or 2-bit PNGs, so those are written here chunk by chunk.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

#: Odd sizes: (height, width).
SIZE = (13, 7)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(path: Path, samples: np.ndarray, color_type: int, depth: int, extra: bytes = b"") -> None:
    """A PNG of ``samples`` (H×W×S integers) as given: colour type, bit depth, extra chunks before IDAT."""
    height, width = samples.shape[:2]
    flat = samples.reshape(height, -1).astype(np.int64)
    rows = []
    for row in flat:
        if depth == 16:
            data = row.astype(">u2").tobytes()
        elif depth == 8:
            data = row.astype(np.uint8).tobytes()
        else:  # pack 1/2/4-bit samples, most significant first
            per = 8 // depth
            padded = np.concatenate([row, np.zeros((-len(row)) % per, np.int64)]).reshape(-1, per)
            shifts = depth * np.arange(per - 1, -1, -1)
            data = (padded << shifts).sum(1).astype(np.uint8).tobytes()
        rows.append(b"\0" + data)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra
                     + _chunk(b"IDAT", zlib.compress(b"".join(rows))) + _chunk(b"IEND", b""))


def write_images(folder: Path) -> list[Path]:
    """Write every case into ``folder``; returns the files."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    h, w = SIZE
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(25)
    ramp16 = (x * 9000 + y * 4000 + 257).astype(np.int64) % 65536
    ramp16[0, 0], ramp16[0, 1], ramp16[1, 0] = 65535, 0, 32896  # white, black and a value between levels
    ramp8 = ((x * 37 + y * 19) % 256).astype(np.uint8)
    rgb8 = np.dstack([ramp8, 255 - ramp8, (ramp8.astype(np.int64) * 3) % 256]).astype(np.uint8)
    alpha8 = ((x * 40 + y * 20) % 256).astype(np.uint8)
    alpha8[0, :3] = [0, 255, 128]
    digit = np.zeros((h, w), np.uint8)
    digit[2:11, 2:5] = 255  # a bright stroke on black, as in the digits

    files: dict[str, Path] = {}

    def path(name: str) -> Path:
        files[name] = folder / name
        return files[name]

    raw_png(path("grey16.png"), ramp16[..., None], 0, 16)
    raw_png(path("rgb16.png"), np.dstack([ramp16, 65535 - ramp16, (ramp16 * 7) % 65536]), 2, 16)
    raw_png(path("rgba16.png"), np.dstack([ramp16, 65535 - ramp16, ramp16 // 2, (ramp16 * 3) % 65536]), 6, 16)
    raw_png(path("la16.png"), np.dstack([ramp16, (65535 - ramp16)]), 4, 16)
    raw_png(path("grey2.png"), (ramp8[..., None] >> 6), 0, 2)
    raw_png(path("grey_trns.png"), ramp8[..., None], 0, 8, _chunk(b"tRNS", struct.pack(">H", int(ramp8[3, 3]))))
    Image.fromarray(ramp8, "L").save(path("grey8.png"))
    Image.fromarray(digit, "L").save(path("digit.png"))
    Image.fromarray(rgb8, "RGB").save(path("rgb8.png"))
    Image.fromarray(np.dstack([rgb8, alpha8]), "RGBA").save(path("rgba8.png"))
    Image.fromarray(np.dstack([digit, alpha8]), "LA").save(path("la8.png"))
    Image.fromarray(ramp8 > 100).save(path("bilevel.png"))
    palette = Image.fromarray(rgb8, "RGB").quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    palette.save(path("palette.png"))
    palette.save(path("palette_trns.png"), transparency=bytes([0, 40, 128, 255, 200] + [255] * 11))
    Image.fromarray(rgb8, "RGB").save(path("rgb420.jpg"), quality=85)
    Image.fromarray(rgb8, "RGB").save(path("rgb444.jpg"), quality=95, subsampling=0)
    Image.fromarray(ramp8, "L").save(path("grey.jpg"), quality=90)
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(noise, "RGB").convert("CMYK").save(path("cmyk.jpg"), quality=90)
    return list(files.values())
