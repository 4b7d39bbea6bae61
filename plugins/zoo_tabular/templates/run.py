"""Run the deployed regressor with ONNX Runtime alone (no zoo, no torch): the standardisation is inside model.onnx.

    python run.py ROWS.csv...     predict each CSV row (a header names the columns; prints JSON)
    python run.py --check         run the test vectors in vectors/ and compare
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
INFO = json.loads((HERE / "deploy.json").read_text())
SESSION = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])


def predict(paths):
    results = []
    for path in paths:
        with open(path, newline="", encoding="utf-8-sig") as f:
            table = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
        header = [name.strip() for name in table[0]]
        missing = [name for name in INFO["feature_names"] if name not in header]
        if missing:
            sys.exit(f"{path}: missing feature column(s) {missing}")
        index = [header.index(name) for name in INFO["feature_names"]]
        rows = np.asarray([[float(row[i]) for i in index] for row in table[1:]], np.float32)
        values = SESSION.run([INFO["output"]], {INFO["input"]: rows})[0].reshape(len(rows), -1)
        for number, row in enumerate(values, start=1):
            named = {name: float(v) for name, v in zip(INFO["target_names"], row, strict=True)}
            results.append({"input": f"{Path(path).name}:{number}", **named})
    return results


def read_vector(entry):
    return np.fromfile(HERE / "vectors" / entry["file"], dtype=entry["dtype"]).reshape(entry["shape"])


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
    elif args:
        result = predict(args)
    else:
        sys.exit(__doc__)
    print(json.dumps(result, indent=2))
    sys.exit(0 if not isinstance(result, dict) or result.get("passed", True) else 1)
