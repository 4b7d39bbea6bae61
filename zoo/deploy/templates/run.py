"""Run the deployed model with ONNX Runtime alone (no zoo, no torch): preprocessing is inside model.onnx.

    python run.py IMAGE...        classify image files (prints JSON, like `zoo predict --json`)
    python run.py --samples N     draw N images from the sampler (writes sample_K.png)
    python run.py --check         run the test vectors in vectors/ and compare
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
INFO = json.loads((HERE / "deploy.json").read_text())
SESSION = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])


def read_image(path):
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L" if INFO["channels"] == 1 else "RGB"), dtype=np.uint8)
    return pixels.reshape(1, pixels.shape[0], pixels.shape[1], INFO["channels"])


def classify(paths):
    results = []
    for path in paths:
        probabilities = SESSION.run(["probabilities"], {"image": read_image(path)})[0][0]
        best = int(np.argmax(probabilities))
        named = {c: float(p) for c, p in zip(INFO["class_labels"], probabilities, strict=True)}
        results.append({"image": path, "class": INFO["class_labels"][best], "index": best, "probabilities": named})
    return results


def sample(count, seed=0):
    from PIL import Image

    noise = INFO["noise"]
    rng = np.random.default_rng(seed)
    shape = (count, noise["shape"][1])
    values = rng.uniform(-1.0, 1.0, shape) if noise.get("distribution_id") == "uniform" else rng.standard_normal(shape)
    feeds = {noise["input"]: values.astype(np.float32)}
    if noise.get("label_input"):
        feeds[noise["label_input"]] = (np.arange(count) % noise["num_classes"]).astype(np.int64)
    pixels = SESSION.run(["pixels"], feeds)[0]
    for k, image in enumerate(pixels):
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(f"sample_{k}.png")
    return {"written": count, "shape": list(pixels.shape)}


def read_vector(entry):
    data = np.fromfile(HERE / "vectors" / entry["file"], dtype=entry["dtype"])
    return data.reshape(entry["shape"])


def check():
    vectors = json.loads((HERE / "vectors" / "vectors.json").read_text())
    feeds = {name: read_vector(entry) for name, entry in vectors["inputs"].items()}
    outputs = dict(zip([o.name for o in SESSION.get_outputs()], SESSION.run(None, feeds), strict=True))
    worst = {name: float(np.abs(outputs[name].astype(np.float64) - read_vector(entry)).max())
             for name, entry in vectors["outputs"].items()}
    return {"passed": all(worst[n] <= vectors["outputs"][n]["atol"] for n in worst), "max_abs_diff": worst}


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--check"]:
        result = check()
    elif args[:1] == ["--samples"]:
        result = sample(int(args[1]) if len(args) > 1 else 16)
    elif args:
        result = classify(args)
    else:
        sys.exit(__doc__)
    print(json.dumps(result, indent=2))
    sys.exit(0 if not isinstance(result, dict) or result.get("passed", True) else 1)
