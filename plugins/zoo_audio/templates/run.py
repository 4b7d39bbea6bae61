"""Run the deployed keyword spotter with onnxruntime, numpy and scipy (no zoo, no torch).

    python run.py clip.wav [more.wav ...]   one JSON line per file: class and probabilities
    python run.py --check                   the clips in vectors/ must give the stored probabilities

WAV files are read as zoo reads them: scipy.io.wavfile, integers scaled by their full scale, channels
averaged, scipy.signal.resample_poly to the model's rate, the first `samples` kept or zeros appended.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from scipy.io import wavfile
from scipy.signal import resample_poly

HERE = Path(__file__).resolve().parent
INFO = json.loads((HERE / "deploy.json").read_text())
FULL_SCALE = {np.dtype("int16"): 32768.0, np.dtype("int32"): 2147483648.0}


def read_clip(path):
    rate, data = wavfile.read(path)
    if data.size == 0:
        raise ValueError(f"{path}: the WAV file holds no samples")
    if data.dtype == np.uint8:
        samples = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype in FULL_SCALE:
        samples = data.astype(np.float32) / np.float32(FULL_SCALE[data.dtype])
    else:
        samples = data.astype(np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    target = INFO["sample_rate"]
    if rate != target:
        common = math.gcd(int(rate), target)
        samples = resample_poly(samples.astype(np.float64), target // common, int(rate) // common)
    samples = np.asarray(samples, np.float32)[: INFO["samples"]]
    return np.concatenate([samples, np.zeros(INFO["samples"] - len(samples), np.float32)])


def read_vector(entry):
    return np.fromfile(HERE / "vectors" / entry["file"], dtype=entry["dtype"]).reshape(entry["shape"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    session = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])
    if args.check:
        vectors = json.loads((HERE / "vectors" / "vectors.json").read_text())
        waves = read_vector(vectors["inputs"][INFO["input"]])
        want = vectors["outputs"]["probabilities"]
        got = session.run([INFO["output"]], {INFO["input"]: waves})[0]
        diff = float(np.abs(got - read_vector(want)).max())
        print(json.dumps({"passed": diff <= want["atol"], "max_abs_diff": diff}))
        return 0 if diff <= want["atol"] else 1
    if not args.files:
        parser.error("give WAV files, or --check")
    try:
        batch = np.stack([read_clip(f) for f in args.files])
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    probabilities = session.run([INFO["output"]], {INFO["input"]: batch})[0]
    labels = INFO["class_labels"]
    for name, p in zip(args.files, probabilities, strict=True):
        print(json.dumps({"file": name, "class": labels[int(p.argmax())],
                          "probabilities": dict(zip(labels, map(float, p), strict=True))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
