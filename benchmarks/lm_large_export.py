"""The GPT-2-sized preset (`gpt2-small`, random initial weights, byte tokenizer): export its cached graph through
the family's own GraphSpec (weights in external data, as for every model over 50 M parameters), then greedy
generation from several prompts in PyTorch (its own cache) and ONNX Runtime must give identical tokens.

    python benchmarks/lm_large_export.py --tokens 32 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PROMPTS = ("The ", "def main():", "In Python, ")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gpt2-small")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from lm_generation import build
    from zoo_lm.model import greedy

    from zoo.bundles.onnx_graph import check_graph, export_graph, external_data_files
    from zoo.ort import CPU, session

    model, (graph,) = build(args.model)
    meta = json.loads(graph.metadata["zoo_lm"])
    params = sum(p.numel() for p in model.parameters())
    lines = [f"# {args.model}: {params / 1e6:.1f} M parameters, random initial weights, byte tokenizer, "
             f"CPU, {args.threads} threads"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        start = time.perf_counter()
        export_graph(graph, path, opset=18, exporter="dynamo", metadata={})
        check_graph(path, graph.name)
        lines.append(f"export (dynamo) + checker: {time.perf_counter() - start:.0f} s; graph file "
                     f"{path.stat().st_size / 1e6:.1f} MB, external data {external_data_files(path)} "
                     f"{(path.parent / 'model.onnx.data').stat().st_size / 1e6:.0f} MB")
        sess = session(str(path), CPU, threads=args.threads)
        for prompt in PROMPTS:
            ids = list(prompt.encode())
            torch_tokens, _ = greedy(model, ids, args.tokens)
            feed_ids = np.asarray([ids], np.int64)
            cache = {n: np.zeros((1, meta["heads"], 0, meta["head_dim"]), np.float32) for n in meta["past"]}
            ort_tokens = []
            for _ in range(args.tokens):
                mask = np.ones((1, len(ids) + len(ort_tokens)), np.int64)  # one prompt: every token real
                out = sess.run(None, {"input_ids": feed_ids, "attention_mask": mask, **cache})
                cache = dict(zip(meta["past"], out[1:], strict=True))
                ort_tokens.append(int(out[0][0, -1].argmax()))
                feed_ids = np.asarray([[ort_tokens[-1]]], np.int64)
            same = ort_tokens == torch_tokens
            lines.append(f"prompt {prompt!r}: {args.tokens} greedy tokens identical in PyTorch and ORT: {same}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"lm_large_export-{args.model}.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
