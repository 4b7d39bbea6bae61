"""Prompts of different lengths decoded as one left-padded batch (the graph's attention mask) against the same
prompts one after another, through `zoo generate`'s own loop (`LMSession.generate`), greedy; the tokens must be
identical. Random initial weights and random prompt ids (speed does not depend on them), fixed threads, medians.

    python benchmarks/lm_batch_prompts.py --model gpt-mini --threads 1 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

LENGTHS = (4, 8, 12, 16, 24, 32, 48, 64)


def session_over(path: Path, spec: dict, threads: int) -> Any:
    """An ``LMSession`` over a bare exported graph (the benchmark has no bundle; generation needs no tokenizer)."""
    from zoo_lm.generate import LMSession

    from zoo.ort import CPU, session

    lm = LMSession.__new__(LMSession)
    lm.session, lm.spec, lm.context = session(str(path), CPU, threads=threads), spec, int(spec["context"])
    lm.mask_input = spec["attention_mask"]
    return lm


def median_s(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gpt-mini")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    from lm_generation import build
    from zoo_lm.generate import Sampling

    from zoo.bundles.onnx_graph import export_graph

    model, (graph,) = build(args.model)
    spec = json.loads(graph.metadata["zoo_lm"])
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, spec["vocab_size"], n).tolist() for n in LENGTHS]
    greedy = Sampling(temperature=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_graph(graph, path, opset=18, exporter="dynamo", metadata={})
        lm = session_over(path, spec, args.threads)
        batch = lm.generate(prompts, args.new_tokens, greedy)
        alone = [lm.generate([p], args.new_tokens, greedy)[0] for p in prompts]
        batched_s = median_s(lambda: lm.generate(prompts, args.new_tokens, greedy), args.runs)
        one_by_one_s = median_s(lambda: [lm.generate([p], args.new_tokens, greedy) for p in prompts], args.runs)
    tokens = len(prompts) * args.new_tokens
    lines = [f"# {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, ONNX Runtime "
             f"CPU, {args.threads} thread(s), median of {args.runs}",
             "",
             f"{len(prompts)} prompts of {', '.join(map(str, LENGTHS))} tokens, {args.new_tokens} greedy tokens each "
             "(`LMSession.generate`, as `zoo generate --prompt ... --prompt ...`)",
             "",
             "| how | seconds | tokens/s |",
             "| --- | --- | --- |",
             f"| one batch (left-padded, attention mask) | {batched_s:.2f} | {tokens / batched_s:.0f} |",
             f"| one prompt after another | {one_by_one_s:.2f} | {tokens / one_by_one_s:.0f} |",
             "",
             f"batch / one by one: {one_by_one_s / batched_s:.2f}×; each row's tokens identical to its prompt "
             f"alone: {batch == alone}"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"lm_batch_prompts-{args.model}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
