"""Loaders for the file-based datasets: each returns RawData or raises DataError naming the file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from zoo.data import RawData, RawFiles
from zoo.data.readers import DataError, read_cifar_batch, read_idx, read_npz

MAX_CLASSES = 10_000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _folder(path: str, dataset: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; give the folder that holds the {dataset} files")
    return folder


def _find(folder: Path, stem: str, dataset: str, expected: list[str]) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{dataset}: {folder} lacks {stem}[.gz]; expected these files there: {', '.join(expected)}")


def _load_idx_pair(path: str, dataset: str, class_names: list[str]) -> RawData:
    folder = _folder(path, dataset)
    expected = ["train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]"]
    images_file = _find(folder, "train-images-idx3-ubyte", dataset, expected)
    labels_file = _find(folder, "train-labels-idx1-ubyte", dataset, expected)
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3:
        raise DataError(f"{images_file}: expected N×H×W images, got shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_file}: expected a vector of labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} labels")
    return RawData(images.astype(np.uint8), labels, class_names, 1 / 255, str(images_file))


def load_mnist(*, seed: int, val_fraction: float, path: str) -> RawData:
    return _load_idx_pair(path, "mnist", [str(i) for i in range(10)])


def load_fashion_mnist(*, seed: int, val_fraction: float, path: str) -> RawData:
    return _load_idx_pair(path, "fashion-mnist", FASHION_CLASSES)


def load_cifar10(*, seed: int, val_fraction: float, path: str) -> RawData:
    folder = _folder(path, "cifar10")
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"cifar10: {folder} lacks {', '.join(missing)}; expected data_batch_1 … data_batch_5 there")
    parts = [read_cifar_batch(folder / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return RawData(images, labels, CIFAR_CLASSES, 1 / 255, str(folder))


def load_imagefolder(*, seed: int, val_fraction: float, path: str) -> RawFiles:
    """Every image under PATH/<class>/, read lazily; grayscale if every image is, else RGB; the
    commonest image size unless ``--image-size`` says otherwise."""
    from PIL import Image, UnidentifiedImageError

    folder = _folder(path, "imagefolder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{folder} needs at least two class sub-folders (PATH/<class>/<image>.png), found {classes}")
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"class folder {folder / name} holds no PNG or JPEG images; add some or remove it")
        files.extend(found)
        labels.extend([index] * len(found))
    modes, sizes = Counter(), Counter()
    for file in files:  # headers only: Pillow reads pixels lazily
        try:
            with Image.open(file) as image:
                modes[image.mode] += 1
                sizes[image.size] += 1
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{file} is not a readable image ({exc}); remove or replace it") from exc
    mode = "L" if set(modes) <= {"L", "1", "I;16", "I"} else "RGB"
    width, height = sizes.most_common(1)[0][0]
    return RawFiles(files, np.array(labels, dtype=np.int64), classes, mode, (height, width), 1 / 255, str(folder))


def load_npz(*, seed: int, val_fraction: float, path: str) -> RawData:
    images, labels, names = read_npz(path)
    if images.dtype == np.uint8:
        scale = 1 / 255
    elif np.issubdtype(images.dtype, np.floating) and images.size and np.isfinite(images).all():
        scale = 1.0
    else:
        raise DataError(f"{path}: images must be uint8 (0-255) or finite floats (0-1), got {images.dtype}")
    if labels.size == 0:
        raise DataError(f"{path} holds no labels")
    if not np.issubdtype(labels.dtype, np.number):
        raise DataError(f"{path}: labels must be numbers, got {labels.dtype}")
    if names is None:  # classes 0 … max label; check_labels rejects negatives and non-integers later
        top = int(labels.max()) if np.isfinite(labels).all() else 0
        if top >= MAX_CLASSES:
            raise DataError(f"{path}: label {top} implies over {MAX_CLASSES} classes; fix the labels or store "
                            "a 'class_names' array")
        names = [str(i) for i in range(max(top + 1, 2))]
    return RawData(images, labels, names, scale, str(path))
