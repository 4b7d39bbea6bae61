"""A model past the 2 GB protobuf limit: export it with external data, verify it, record time and memory.

Trains ``resnet-small`` for one epoch (a real run directory), then writes a second run directory
beside it holding the same model scaled up (``width``) until its weights exceed 2 GiB, with freshly
initialised weights (export and parity do not depend on the weights' values). Exports that run
through ``zoo.bundles.export_run`` (which switches to one external data file on its own), then
verifies the bundle from the bundle alone and against PyTorch. Prints one line per step with wall
time and the peak resident memory of this process so far.

    python benchmarks/large_model_export.py [--width 1360] [--out /tmp/zoo-large] [--real-samples 32]

Needs about 12 GB of memory and, on 2 CPU cores, ten-odd minutes. Not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path


def peak_rss_gib() -> float:
    """Peak resident memory of this process (and of finished children, e.g. the GPU probes), in GiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 2**20  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1360, help="resnet-small width (1360: about 2.2 GB of weights)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/zoo-large"))
    parser.add_argument("--real-samples", type=int, default=32,
                        help="real validation samples checked per graph (fewer than zoo's default, to save time)")
    args = parser.parse_args()

    import torch

    import zoo
    from zoo.atomic import save_weights, write_json
    from zoo.bundles import export_run, format_table, graph_checks, verify_bundle
    from zoo.run_layout import CONFIG, SUMMARY, WEIGHTS
    from zoo.runs import load_run

    graph_checks.MAX_REAL_SAMPLES = args.real_samples
    shutil.rmtree(args.out, ignore_errors=True)
    lines: list[str] = [f"torch {torch.__version__}, width {args.width}, real samples {args.real_samples}"]

    def step(name: str, start: float, extra: str = "") -> None:
        lines.append(f"{name:<28} {time.perf_counter() - start:8.1f} s   peak RSS {peak_rss_gib():6.2f} GiB  {extra}")
        print(lines[-1], flush=True)

    start = time.perf_counter()
    small = zoo.train("resnet-small", epochs=1, out=args.out / "runs", progress=False)
    step("train small run", start)

    start = time.perf_counter()
    large_dir = args.out / "runs" / f"resnet-small-w{args.width}"
    large_dir.mkdir()
    config = json.loads((small.run_dir / CONFIG).read_text())
    config["model_args"]["width"] = args.width
    write_json(large_dir / CONFIG, config)
    shutil.copy(small.run_dir / SUMMARY, large_dir / SUMMARY)
    spec = zoo.get_spec("resnet-small")
    family = zoo.load_family(spec.family)
    from zoo.data import DataInfo

    model = family.build(spec, DataInfo.from_dict(config["data"]), config["model_args"])
    size = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    save_weights(large_dir / WEIGHTS, model.state_dict())
    del model
    load_run(large_dir)  # the scaled run loads back like any other
    step("write scaled run", start, f"weights {size / 2**30:.2f} GiB ({size / 1e9:.2f} GB)")

    start = time.perf_counter()
    result = export_run(large_dir, out=args.out / "exports", providers=["cpu"])
    files = {p.relative_to(result.bundle_dir).as_posix(): p.stat().st_size
             for p in result.bundle_dir.rglob("*") if p.is_file() and p.stat().st_size > 1 << 20}
    step("export + parity (CPU)", start, f"external data {result.manifest['graphs']['model']['external_data']}")
    lines.append(f"files over 1 MiB: {files}")

    start = time.perf_counter()
    alone = verify_bundle(result.bundle_dir, providers=["cpu"], bundle_only=True)
    step("verify --bundle-only", start, "PASSED" if alone["passed"] else "FAILED")

    start = time.perf_counter()
    full = verify_bundle(result.bundle_dir, providers=["cpu"])
    step("verify with PyTorch", start, "PASSED" if full["passed"] else "FAILED")
    lines.append(format_table(full))
    print(lines[-1])
    out = Path(__file__).parent / "results" / "large_model_export.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
