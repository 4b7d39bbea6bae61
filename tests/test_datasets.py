"""Dataset readers on small files the tests build themselves: valid ones load, broken ones get one line."""

from __future__ import annotations

import contextlib
import gzip
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo.cli import cli
from zoo.data import DataOptions, load_dataset
from zoo.data.readers import DataError, load_image, read_cifar_batch, read_idx, read_npz


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_mnist(folder: Path, n: int = 30, *, gz: bool = False, labels_n: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 6, 6), dtype=np.uint8)
    labels = (np.arange(labels_n if labels_n is not None else n) % 10).astype(np.uint8)
    for stem, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return folder


def test_mnist_raw_and_gzip(tmp_path: Path) -> None:
    for gz in (False, True):
        folder = write_mnist(tmp_path / f"mnist-{gz}", gz=gz)
        data = load_dataset(f"mnist:{folder}", seed=1)
        assert data.info.shape == (1, 6, 6) and data.info.num_classes == 10
        assert len(data.x_train) + len(data.x_val) == 30
        assert data.info.scale == pytest.approx(1 / 255)


def test_mnist_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"lacks train-images-idx3-ubyte\[.gz\]; expected these files there"):
        load_dataset(f"mnist:{tmp_path}")
    with pytest.raises(Exception, match="reads local files: use --data mnist:PATH"):
        load_dataset("mnist")
    folder = write_mnist(tmp_path / "short", labels_n=20)
    with pytest.raises(DataError, match=r"holds 30 images but .* holds 20 labels"):
        load_dataset(f"mnist:{folder}")
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-7])
    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated"):
        load_dataset(f"mnist:{folder}")
    gz = write_mnist(tmp_path / "gz", gz=True) / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:20])
    with pytest.raises(DataError, match="not a valid gzip file"):
        load_dataset(f"mnist:{gz.parent}")


def write_cifar(folder: Path, n: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def test_cifar_batches(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    data = load_dataset(f"cifar10:{tmp_path}", options=DataOptions(channels=1, image_size=(16, 16)))
    assert data.info.shape == (1, 16, 16) and data.info.source_shape == [3, 32, 32]
    assert data.info.class_names[0] == "airplane"
    (folder / "data_batch_3").write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match=r"data_batch_3 is not a CIFAR-10 python batch"):
        load_dataset(f"cifar10:{folder}")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="lacks data_batch_3"):
        load_dataset(f"cifar10:{folder}")


def test_cifar_reader_refuses_code_in_pickles(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match=r"refusing to load (__builtin__|builtins)\.print"):
        read_cifar_batch(path)


def test_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, images=rng.integers(0, 256, (40, 10, 10, 3), dtype=np.uint8), labels=np.arange(40) % 4)
    data = load_dataset(f"npz:{path}")
    assert data.info.shape == (3, 10, 10) and data.info.num_classes == 4
    # N×H×W×C files become N×C×H×W in memory too, not a transposed view: the engine's batches would otherwise
    # reach the model channels-last (other kernels, other results than a hand-written loop's)
    assert data.x_train.flags.c_contiguous and data.x_val.flags.c_contiguous
    np.savez(path, x=rng.random((10, 5, 5)).astype(np.float32), y=np.arange(10) % 2,
             class_names=np.array(["cat", "dog"]))
    assert load_dataset(f"npz:{path}").info.class_names == ["cat", "dog"]
    np.savez(path, x=rng.random((10, 5, 5)), y=np.arange(10) % 3, class_names=np.array(["cat", "dog"]))
    with pytest.raises(DataError, match="label 2 is outside the 2 classes"):
        load_dataset(f"npz:{path}")
    np.savez(path, x=rng.random((10, 5, 5)), y=np.arange(9))
    with pytest.raises(DataError, match="10 images but 9 labels"):
        load_dataset(f"npz:{path}")
    np.savez(path, pictures=np.zeros((3, 4, 4)))
    with pytest.raises(DataError, match="it needs 'images' and 'labels'"):
        load_dataset(f"npz:{path}")
    np.savez(path, images=np.array([object()], dtype=object), labels=np.zeros(1))
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load_dataset(f"npz:{path}")
    np.savez(path, images=np.zeros((4, 3, 3)), labels=np.array([0, 1, -1, 0]))
    with pytest.raises(DataError, match="label -1 is negative"):
        load_dataset(f"npz:{path}")


def make_image_folder(root: Path, per_class: int = 60, size: int = 12) -> Path:
    """Three classes of RGB images told apart by their dominant colour, with noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 120, (size, size, 3))
            pixels[:, :, index] += 120
            Image.fromarray(pixels.astype(np.uint8), "RGB").save(root / name / f"{i}.png")
    return root


def test_image_folder_errors(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "images", per_class=3)
    assert load_dataset(f"imagefolder:{root}").info.shape == (3, 12, 12)
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="empty holds no PNG or JPEG images"):
        load_dataset(f"imagefolder:{root}")
    (root / "empty").rmdir()
    (root / "red" / "zero.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"zero.png is not a readable image"):
        load_dataset(f"imagefolder:{root}")
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_readers_never_fail_with_anything_but_data_error(tmp_path: Path, blob: bytes) -> None:
    for name, reader in (("f-idx", read_idx), ("f-idx.gz", read_idx), ("data_batch_1", read_cifar_batch),
                         ("f.npz", read_npz), ("f.png", lambda p: load_image(p, mode="RGB"))):
        path = tmp_path / name
        path.write_bytes(gzip.compress(blob) if name.endswith(".gz") and blob[:1] == b"\x01" else blob)
        with contextlib.suppress(DataError):
            reader(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 255), min_size=4, max_size=64), st.integers(0, 30))
def test_idx_header_fuzz(tmp_path: Path, body: list[int], cut: int) -> None:
    valid = idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8))
    blob = valid[: max(0, len(valid) - cut)] + bytes(body)
    path = tmp_path / "fuzz-idx"
    path.write_bytes(blob)
    try:
        array = read_idx(path)
    except DataError:
        return
    assert array.size * array.itemsize + 4 + 4 * array.ndim == len(blob)


def test_datasets_command() -> None:
    rows = json.loads(CliRunner().invoke(cli, ["datasets", "--json"]).output)
    by_name = {r["name"]: r for r in rows}
    assert {"digits", "mnist", "fashion-mnist", "cifar10", "imagefolder", "npz"} <= set(by_name)
    assert by_name["digits"]["input"] == [1, 8, 8] and not by_name["digits"]["needs_path"]
    assert by_name["mnist"]["needs_path"]
    assert "mnist:PATH" in CliRunner().invoke(cli, ["datasets"]).output


def test_image_folder_trains_exports_and_predicts_like_pytorch(tmp_path: Path) -> None:
    import torch

    import zoo
    from zoo.predict import preprocess
    from zoo.runs import load_run

    root = make_image_folder(tmp_path / "images")
    run = zoo.train("cnn", dataset=f"imagefolder:{root}", epochs=3, out=tmp_path / "runs", progress=False)
    assert run.summary["metrics"]["val_accuracy"] > 0.6, "3 balanced classes: chance is 1/3"
    bundle = zoo.export(run.run_dir, out=tmp_path / "exports").bundle_dir
    files = sorted(root.rglob("*.png"))[::7]
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoo", "predict", str(bundle),
                          *map(str, files), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| torch\n" not in out.stderr and not any(
        line.rsplit("|", 1)[-1].strip() == "torch" for line in out.stderr.splitlines()), "predict imported torch"
    predicted = [r["class"] for r in json.loads(out.stdout)]
    loaded = load_run(run.run_dir)
    meta = json.loads((bundle / "manifest.json").read_text())["graphs"]["model"]["metadata"]
    with torch.no_grad():
        logits = loaded.model(torch.from_numpy(np.concatenate([preprocess(f, meta) for f in files])))
    assert predicted == [loaded.data_info.class_names[i] for i in logits.argmax(1).tolist()]
    truth = [f.parent.name for f in files]
    assert sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(files) > 0.6


def test_predict_on_a_missing_bundle_is_one_line(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["predict", str(tmp_path), str(tmp_path / "x.png")])
    assert out.exit_code == 2 and "is not a zoo bundle" in out.output


def test_lazy_images_index_like_arrays_and_match_predict_preprocessing(tmp_path: Path) -> None:
    from PIL import Image

    from zoo.data.lazy import LazyImages
    from zoo.predict import preprocess

    root = make_image_folder(tmp_path / "images", per_class=4)
    Image.new("RGB", (20, 9), (200, 10, 10)).save(root / "red" / "odd-size.png")  # resized to the commonest size
    data = load_dataset(f"imagefolder:{root}", options=DataOptions(image_size=(10, 10)))
    images = data.x_train
    assert isinstance(images, LazyImages) and images.shape == (len(data.y_train), 3, 10, 10)
    assert np.array_equal(images[1:3], np.stack([images[1], images[2]]))
    assert np.array_equal(images[[2, 0]], np.stack([images[2], images[0]]))
    assert np.asarray(images).shape == images.shape
    meta = {"input_shape": json.dumps(["batch", 3, 10, 10]),
            "normalization": json.dumps({"scale": data.info.scale, "mean": data.info.mean, "std": data.info.std})}
    for i in range(len(images)):
        assert np.allclose(preprocess(images.files[i], meta)[0], images[i], atol=1e-6)


def test_model_adapts_to_the_data_or_names_the_flag(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "images", per_class=4)
    runner = CliRunner()
    out = runner.invoke(cli, ["train", "cnn", "--data", f"imagefolder:{root}", "--image-size", "2x2",
                              "--out", str(tmp_path / "runs")])
    assert out.exit_code == 2
    assert "too small" in out.output and "--image-size" in out.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    bad = runner.invoke(cli, ["train", "cnn", "--image-size", "8by8"])
    assert bad.exit_code == 2 and "use HxW" in bad.output
    out = runner.invoke(cli, ["train", "cnn", "--data", f"imagefolder:{root}", "--epochs", "1",
                              "--out", str(tmp_path / "runs")])
    assert out.exit_code == 0, out.output
    assert "cnn adapted to the data: in_channels 1→3, num_classes 10→3, image_size [8, 8]→[12, 12]" in out.output


def test_augmentation_shifts_reproducibly_and_trains(tmp_path: Path) -> None:
    import torch

    import zoo
    from zoo.data.augment import random_shift

    images = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    a = random_shift(images, seed=0, epoch=1, batch=3)
    assert torch.equal(a, random_shift(images, seed=0, epoch=1, batch=3)), "same seed, epoch and batch: same shift"
    assert a.shape == images.shape
    assert any(not torch.equal(random_shift(images, seed=0, epoch=1, batch=b), images) for b in range(5))
    run = zoo.train("cnn", epochs=2, augment=True, progress=False, out=tmp_path)
    assert run.summary["metrics"]["val_accuracy"] > 0.5, "ten classes: chance is 0.1"
    assert "augment = true" in (run.run_dir / "run.toml").read_text()
