"""Run the deployed model with ONNX Runtime alone (no zoo, no torch): preprocessing is inside model.onnx.

    python run.py IMAGE...                 classify image files (prints JSON, like `zoo predict --json`)
    python run.py --samples N [--seed S]   draw N images from the sampler (writes sample_K.png)
    python run.py --check                  run the test vectors in vectors/ and compare
    python run.py --pixels IMAGE...        the uint8 pixels the graph receives for each IMAGE (JSON)

Images are decoded by decoding.py, zoo's one rule (16-bit to its high byte, alpha over black, palette and
CMYK to RGB, ITU-R 601-2 grey): the same pixels as in training, `zoo predict`, node and the browser.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


class Refused(Exception):
    """Bad input: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Refused(f"{message} (python run.py --help shows the usage)")


def _parser():
    parser = _Parser(prog="run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="PNG or JPEG files to classify")
    parser.add_argument("--samples", type=int, metavar="N", help="draw N images from the sampler")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="the noise's seed (default 0)")
    parser.add_argument("--check", action="store_true", help="run the test vectors in vectors/")
    parser.add_argument("--pixels", action="store_true", help="print the uint8 pixels the graph gets per IMAGE")
    return parser


def _info():
    return json.loads((HERE / "deploy.json").read_text())


def _session():
    import onnxruntime as ort

    return ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])


def read_image(path, channels):
    """1×H×W×C uint8: the file decoded by zoo's one rule (decoding.py)."""
    from PIL import Image, UnidentifiedImageError

    sys.path.insert(0, str(HERE))
    from decoding import decode

    try:
        with Image.open(path) as image:
            image.load()
            pixels = decode(image, channels)
    except FileNotFoundError:
        raise Refused(f"{path} does not exist") from None
    except IsADirectoryError:
        raise Refused(f"{path} is a folder; give image files") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise Refused(f"{path} is not a readable PNG/JPEG image ({exc})") from None
    if pixels.size == 0:
        raise Refused(f"{path} is an empty image")
    return pixels[None]


def classify(paths):
    info, session = _info(), _session()
    if info["kind"] != "classifier":
        raise Refused(f"this model is a {info['kind']}, not a classifier: use --samples N")
    images = [read_image(path, info["channels"]) for path in paths]  # every file is checked before running
    results = []
    for path, image in zip(paths, images, strict=True):
        probabilities = session.run(["probabilities"], {"image": image})[0][0]
        best = int(np.argmax(probabilities))
        named = {c: float(p) for c, p in zip(info["class_labels"], probabilities, strict=True)}
        results.append({"image": path, "class": info["class_labels"][best], "index": best, "probabilities": named})
    return results


def sample(count, seed):
    from PIL import Image

    info = _info()
    if info["kind"] == "classifier":
        raise Refused("this model is a classifier: give image files, not --samples")
    if count < 1 or seed < 0:
        raise Refused("--samples must be at least 1 and --seed at least 0")
    noise = info["noise"]
    rng = np.random.default_rng(seed)
    shape = (count, noise["shape"][1])
    values = rng.uniform(-1.0, 1.0, shape) if noise.get("distribution_id") == "uniform" else rng.standard_normal(shape)
    feeds = {noise["input"]: values.astype(np.float32)}
    if noise.get("label_input"):
        feeds[noise["label_input"]] = (np.arange(count) % noise["num_classes"]).astype(np.int64)
    pixels = _session().run(["pixels"], feeds)[0]
    for k, image in enumerate(pixels):
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(f"sample_{k}.png")
    return {"written": count, "shape": list(pixels.shape), "seed": seed}


def read_vector(entry):
    data = np.fromfile(HERE / "vectors" / entry["file"], dtype=entry["dtype"])
    return data.reshape(entry["shape"])


def check():
    session = _session()
    vectors = json.loads((HERE / "vectors" / "vectors.json").read_text())
    feeds = {name: read_vector(entry) for name, entry in vectors["inputs"].items()}
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    worst = {name: float(np.abs(outputs[name].astype(np.float64) - read_vector(entry)).max())
             for name, entry in vectors["outputs"].items()}
    return {"passed": all(worst[n] <= vectors["outputs"][n]["atol"] for n in worst), "max_abs_diff": worst}


def pixels_of(paths):
    channels = _info()["channels"]
    images = [read_image(path, channels)[0] for path in paths]
    return [{"image": path, "shape": list(image.shape), "data": image.reshape(-1).tolist()}
            for path, image in zip(paths, images, strict=True)]


def main(argv):
    args = _parser().parse_args(argv)
    if args.check:
        return check()
    if args.pixels:
        if not args.images:
            raise Refused("--pixels needs image files")
        return pixels_of(args.images)
    if args.samples is not None:
        return sample(args.samples, args.seed)
    if args.images:
        return classify(args.images)
    raise Refused("give image files, --samples N or --check (python run.py --help shows the usage)")


if __name__ == "__main__":
    try:
        result = main(sys.argv[1:])
    except Refused as exc:
        print(f"run.py: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        print(json.dumps(result) if "--pixels" in sys.argv else json.dumps(result, indent=2))
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (`| head`): end quietly
        sys.stdout = None
    sys.exit(0 if not isinstance(result, dict) or result.get("passed", True) else 1)
