"""zoo's one decoding rule (zoo/data/decoding.py) in training's reader and `zoo predict`, computed independently.

The same images through python, node and headless Chromium deployments: tests/test_deploy.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .decoding_images import raw_png, write_images


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {p.name: p for p in write_images(tmp_path_factory.mktemp("decoding"))}


def _load(path: Path, channels: int) -> np.ndarray:
    from zoo.data.readers import load_image

    return load_image(path, mode="L" if channels == 1 else "RGB")


def _luma(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., k].astype(np.int64) for k in range(3))
    return ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16).astype(np.uint8)


def test_a_16_bit_grey_png_keeps_its_high_byte(tmp_path: Path) -> None:
    """Pillow's convert("L") clipped every 16-bit value above 255 to white (99 % of a real scan)."""
    values = np.array([[0, 255, 256, 32896], [40000, 65280, 65535, 12345]], np.int64)
    raw_png(tmp_path / "g16.png", values[..., None], 0, 16)
    got = _load(tmp_path / "g16.png", 1)[..., 0]
    assert got.tolist() == (values >> 8).tolist()
    assert _load(tmp_path / "g16.png", 3).tolist() == np.repeat((values >> 8)[..., None], 3, -1).tolist()


def test_16_bit_colour_keeps_its_high_byte_too(tmp_path: Path) -> None:
    values = np.array([[[65535, 0, 32896], [256, 511, 40000]]], np.int64)
    raw_png(tmp_path / "c16.png", values, 2, 16)
    assert _load(tmp_path / "c16.png", 3).tolist() == (values >> 8).tolist()


def test_alpha_is_composited_over_black(tmp_path: Path) -> None:
    """Alpha was dropped: a transparent pixel read as its (arbitrary) colour."""
    from PIL import Image

    rgba = np.array([[[255, 255, 255, 0], [255, 255, 255, 128], [200, 100, 50, 255], [10, 250, 90, 77]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    expected = (rgba[..., :3].astype(np.int64) * rgba[..., 3:] + 127) // 255
    assert _load(tmp_path / "a.png", 3).tolist() == expected.tolist()
    assert _load(tmp_path / "a.png", 1)[..., 0].tolist() == _luma(expected).tolist()
    assert expected[0, 0].tolist() == [0, 0, 0] and expected[0, 1].tolist() == [128, 128, 128]


def test_palette_with_transparency_and_grey_with_a_transparent_value(images: dict[str, Path]) -> None:
    from PIL import Image

    with Image.open(images["palette_trns.png"]) as image:
        index = np.asarray(image)
        colours = np.asarray(image.getpalette()[:48], np.int64).reshape(16, 3)
        alpha = np.frombuffer(image.info["transparency"], np.uint8).astype(np.int64)
    expected = (colours[index] * alpha[index][..., None] + 127) // 255
    assert _load(images["palette_trns.png"], 3).tolist() == expected.tolist()
    with Image.open(images["grey_trns.png"]) as image:
        grey, hidden = np.asarray(image), image.info["transparency"]
    assert (grey == hidden).any()
    assert _load(images["grey_trns.png"], 1)[..., 0].tolist() == np.where(grey == hidden, 0, grey).tolist()


def test_cmyk_becomes_rgb_by_the_stated_formula(images: dict[str, Path]) -> None:
    from PIL import Image

    with Image.open(images["cmyk.jpg"]) as image:
        cmyk = np.asarray(image).astype(np.int64)
    expected = ((255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) + 127) // 255
    assert _load(images["cmyk.jpg"], 3).tolist() == expected.tolist()
    assert _load(images["cmyk.jpg"], 1)[..., 0].tolist() == _luma(expected).tolist()


def test_colour_to_grey_is_601_2_luma_and_grey_stays_itself(images: dict[str, Path]) -> None:
    from PIL import Image

    with Image.open(images["rgb8.png"]) as image:
        rgb = np.asarray(image)
    assert _load(images["rgb8.png"], 1)[..., 0].tolist() == _luma(rgb).tolist()
    with Image.open(images["grey8.png"]) as image:
        grey = np.asarray(image)
    assert _load(images["grey8.png"], 1)[..., 0].tolist() == grey.tolist()
    assert _load(images["grey2.png"], 1).max() == 255  # 2-bit grey scaled to 0–255


def test_training_reader_and_zoo_predict_give_the_graph_the_same_input(images: dict[str, Path]) -> None:
    """LazyImages (imagefolder training) and `zoo predict` preprocess every shared image identically."""
    from zoo.data.lazy import LazyImages
    from zoo.predict import preprocess

    norm = {"scale": 1 / 255, "mean": [0.25], "std": [0.5], "pixel_max": 255, "from_8bit": 1.0}
    meta = {"input_shape": json.dumps(["batch", 1, 16, 16]), "normalization": json.dumps(norm)}
    files = list(images.values())
    lazy = LazyImages(files, mode="L", size=(16, 16), scale=norm["scale"], mean=norm["mean"], std=norm["std"])
    for i, file in enumerate(files):
        assert np.array_equal(lazy[i], preprocess(file, meta)[0]), file.name


def test_every_shared_image_decodes(images: dict[str, Path]) -> None:
    for file in images.values():
        for channels in (1, 3):
            pixels = _load(file, channels)
            assert pixels.dtype == np.uint8 and pixels.shape == (13, 7, channels), file.name
