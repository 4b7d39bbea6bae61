"""Generation speed of an `lm` preset: ONNX Runtime against eager PyTorch (each with its key/value cache) at
batch 1 and 8, and the cost of one new token against the context length with and without the cache (a PNG).

Speed does not depend on the weights, so the preset is built with its random initial weights (byte tokenizer)
and exported once through the family's own graph spec. Fixed thread count, untimed warm-up, medians.

    python benchmarks/lm_generation.py --model gpt-mini --threads 1 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def build(model_name: str) -> tuple[torch.nn.Module, list]:
    from zoo_lm.family import LMFamily
    from zoo_lm.tokenizer import byte_tokenizer_json

    import zoo
    from zoo.data import DataInfo, TextInfo
    from zoo.registry import get_spec

    torch.manual_seed(0)
    model = zoo.create_model(model_name).eval()
    spec = get_spec(model_name)
    text = TextInfo(tokenizer="bytes", vocab_size=256, context=spec.model_args["context"],
                    tokenizer_json=byte_tokenizer_json())
    info = DataInfo(name="bench", channels=1, height=1, width=1, num_classes=0, kind="text", text=text)
    return model, LMFamily().graphs(model, info)


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gpt-mini")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from zoo.bundles.onnx_graph import export_graph
    from zoo.ort import CPU, session

    model, (graph,) = build(args.model)
    spec_meta = __import__("json").loads(graph.metadata["zoo_lm"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_graph(graph, path, opset=18, exporter="dynamo", metadata={})
        sess = session(str(path), CPU, threads=args.threads)
        heads, head_dim, past_names = spec_meta["heads"], spec_meta["head_dim"], spec_meta["past"]

        def ort_generate(batch: int, prompt: int, new: int) -> None:
            ids = np.ones((batch, prompt), np.int64)
            cache = {n: np.zeros((batch, heads, 0, head_dim), np.float32) for n in past_names}
            for step in range(new):
                mask = np.ones((batch, prompt + step), np.int64)  # no padding: every token real
                out = sess.run(None, {"input_ids": ids, "attention_mask": mask, **cache})
                cache = dict(zip(past_names, out[1:], strict=True))
                ids = out[0][:, -1].argmax(-1)[:, None].astype(np.int64)

        @torch.no_grad()
        def torch_generate(batch: int, prompt: int, new: int) -> None:
            ids = torch.ones((batch, prompt), dtype=torch.long)
            past = model.empty_cache(batch)
            for _ in range(new):
                logits, past = model.forward_cached(ids, past)
                ids = logits[:, -1].argmax(-1)[:, None]

        lines = [f"# {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, CPU, "
                 f"{args.threads} thread(s), torch {torch.__version__}, median of {args.runs}",
                 "", "## Generation with the cache (prompt 16 tokens, greedy)", "",
                 "| batch | ONNX Runtime tokens/s | eager PyTorch tokens/s | ORT / PyTorch |",
                 "| --- | --- | --- | --- |"]
        for batch in (1, 8):
            ort_ms = median_ms(lambda b=batch: ort_generate(b, 16, args.new_tokens), args.runs)
            pt_ms = median_ms(lambda b=batch: torch_generate(b, 16, args.new_tokens), args.runs)
            rate = lambda ms, b=batch: b * args.new_tokens / (ms / 1e3)  # noqa: E731
            lines.append(f"| {batch} | {rate(ort_ms):.0f} | {rate(pt_ms):.0f} | {pt_ms / ort_ms:.2f}× |")

        lines += ["", "## One new token at context length L (ONNX Runtime, batch 1)", "",
                  "| L | with cache (ms) | without cache: forward over L tokens (ms) | speed-up |",
                  "| --- | --- | --- | --- |"]
        context = spec_meta["context"]
        lengths = [n for n in (16, 32, 64, 128, 256, 512, 1024) if n < context] + [context - 1]
        rows = []
        for length in lengths:
            cache = {n: np.random.default_rng(0).standard_normal((1, heads, length, head_dim)).astype(np.float32)
                     for n in past_names}
            one, mask = np.ones((1, 1), np.int64), np.ones((1, length + 1), np.int64)
            feeds = {"input_ids": one, "attention_mask": mask, **cache}
            cached = median_ms(lambda f=feeds: sess.run(None, f), args.runs * 3)
            empty = {n: np.zeros((1, heads, 0, head_dim), np.float32) for n in past_names}
            full = np.ones((1, length + 1), np.int64)
            uncached = median_ms(lambda f=full, e=empty: sess.run(None, {"input_ids": f, "attention_mask": f, **e}),
                                 args.runs * 3)
            rows.append((length, cached, uncached))
            lines.append(f"| {length} | {cached:.2f} | {uncached:.2f} | {uncached / cached:.1f}× |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"lm_generation-{args.model}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    from zoo.plots import line_chart

    chart = line_chart(f"{args.model}, ONNX Runtime CPU, {args.threads} thread(s): ms per new token, batch 1",
                       {"with the key/value cache": [(r[0], r[1]) for r in rows],
                        "without (forward over the context)": [(r[0], r[2]) for r in rows]}, size=(640, 420),
                       x_label="context length (tokens)")
    chart.save(out / f"lm_cost_per_token-{args.model}.png")


if __name__ == "__main__":
    main()
