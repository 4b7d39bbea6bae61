"""int8 against fp32 under ONNX Runtime CPU, per built-in classifier, at batch 64 (and 1).

Trains each model briefly, exports it with ``--quantize int8`` (what zoo ships: static QDQ, per-channel),
and also tries the other int8 layouts ONNX Runtime offers (per-tensor QDQ, QOperator), so the result
says whether another recipe would have reached the 1.5× target. All graphs of one model are timed in
one process, interleaved round by round, with the same thread count. Accuracy on the validation split.

    python benchmarks/int8_speed.py [--threads 2] [--rounds 300] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", default="cnn,resnet-small")
    args = parser.parse_args()

    import onnxruntime
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    import zoo
    from zoo.bundles import export_run
    from zoo.bundles.variants import _Calibration
    from zoo.data import load_dataset
    from zoo.ort import CPU, session

    lines = [f"threads={args.threads} rounds={args.rounds} onnxruntime={onnxruntime.__version__}",
             f"{'model':<14}{'graph':<26}{'batch':>6}{'median ms':>11}{'vs fp32':>9}{'val acc':>9}"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            run = zoo.train(name, epochs=args.epochs, out=Path(tmp) / "runs", progress=False)
            bundle = export_run(run.run_dir, out=Path(tmp) / "ex", quantize="int8", providers=["cpu"]).bundle_dir
            data = load_dataset("digits", seed=0)
            graphs = {"fp32": bundle / "model" / "model.onnx", "int8 QDQ per-channel (zoo)": bundle / "model.int8" /
                      "model.onnx"}
            prepared = Path(tmp) / f"{name}-prepared.onnx"
            quant_pre_process(str(graphs["fp32"]), str(prepared), skip_symbolic_shape=True)
            for label, fmt, per_channel in (("int8 QDQ per-tensor", QuantFormat.QDQ, False),
                                            ("int8 QOperator", QuantFormat.QOperator, True)):
                path = Path(tmp) / f"{name}-{label.replace(' ', '_')}.onnx"
                quantize_static(str(prepared), str(path), _Calibration(["input"], (data.x_train,)), quant_format=fmt,
                                per_channel=per_channel, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8)
                graphs[label] = path
            sessions = {label: session(str(path), CPU, threads=args.threads) for label, path in graphs.items()}
            accuracy = {label: float((s.run(None, {"input": data.x_val})[0].argmax(1) == data.y_val).mean())
                        for label, s in sessions.items()}
            for batch in (1, 64):
                feed = {"input": np.ascontiguousarray(data.x_val[:batch])}
                times: dict[str, list[float]] = {label: [] for label in sessions}
                for _ in range(20):
                    for s in sessions.values():
                        s.run(None, feed)
                for _ in range(args.rounds):
                    for label, s in sessions.items():
                        start = time.perf_counter()
                        s.run(None, feed)
                        times[label].append(time.perf_counter() - start)
                base = statistics.median(times["fp32"])
                for label, t in times.items():
                    median = statistics.median(t)
                    lines.append(f"{name:<14}{label:<26}{batch:>6}{1e3 * median:>11.3f}{base / median:>8.2f}x"
                                 f"{100 * accuracy[label]:>8.2f}%")
    print("\n".join(lines))
    out = Path(__file__).parent / "results" / "int8_speed.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
