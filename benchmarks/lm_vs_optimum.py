"""Decode speed of ``zoo generate`` on gpt2-small against optimum's ONNX export and ``transformers``' ``generate``,
side by side in one run, and against the machine's memory-bandwidth bound.

The same random weights in every row: a random ``GPT2LMHeadModel`` (GPT-2 small: 12 layers, width 768, context
1024, vocabulary 50,257, tanh GELU) is saved as a Hugging Face folder; zoo takes it in with
``zoo train gpt2-small --init DIR --arg activation=gelu_tanh`` (one smoke step at a learning rate of 1e-30, so the
weights stay as they are; the greedy tokens of the rows are compared to show it) and exports it with
``zoo export --quantize int8`` (the fp32 graph and the int8-weights variant); optimum exports the folder with
``optimum-cli export onnx --task text-generation-with-past`` and runs it with ``ORTModelForCausalLM`` under ONNX
Runtime, its defaults except the thread count. The vocabulary needs a tokenizer of 50,257 ids: a byte-level BPE
trained on the embedded text (9,158 ids) filled up with tokens no text produces; speed does not depend on it.

Each engine runs in a process of its own (so no thread pool spins beside another's), fed the same prompt ids,
greedy, batch 1, the same intra-op thread count; the rounds interleave the engines in a rotating order. The decode
rate is (new tokens − 1) over the time from the first new token to the last (each engine's per-token callback: a
``transformers`` streamer for optimum and transformers, ``LMSession.generate``'s ``on_token`` for zoo, the loop
``zoo generate`` runs), so the prompt's prefill is left out and reported apart.

The bound: bytes of weights each decoded token reads (every initializer a node reads whole; of an embedding, one
row), and the memory bandwidth a numpy copy of 256 MiB arrays reaches with the same number of threads; the bound is
bandwidth / bytes, and each row is given as a fraction of it.

**Two environments.** optimum's ONNX Runtime support (``optimum-onnx`` 0.1.0, the newest) pins
``transformers<4.58``, while zoo's tests use ``transformers`` 5.x, so optimum runs from a venv of its own, with the
same torch and ONNX Runtime builds (``benchmarks/requirements-optimum.txt``)::

    python -m venv .venv-optimum
    .venv-optimum/bin/pip install torch==2.13.0
    .venv-optimum/bin/pip install -r benchmarks/requirements-optimum.txt \\
        onnxruntime-gpu==$(.venv/bin/python -c "import onnxruntime; print(onnxruntime.__version__)")

Run (the preparation is cached under ``--work``; the timed part holds the shared benchmark lock)::

    .venv/bin/python benchmarks/lm_vs_optimum.py --prepare-only
    flock /work/notes/bench.lock .venv/bin/python benchmarks/lm_vs_optimum.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "lm_vs_optimum.txt"
PROMPT = "The for statement is used to iterate over the elements of a sequence (such as a string, tuple or list)"
#: GPT-2 small's shape with GPT-2's vocabulary.
GPT2 = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024, "vocab_size": 50257}
ENGINES = ("zoo-fp32", "zoo-int8", "optimum", "transformers")
#: Issue 22's target: zoo generate at this many times optimum's decode tokens/s (batch 1, same threads).
TARGET = 1.5
#: Nothing is downloaded: every model is made here.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


# --- preparation (cached) ---------------------------------------------------------------------------------------

def prepare(work: Path, optimum_python: Path) -> dict[str, Path]:
    """The Hugging Face folder, zoo's bundle (fp32 + int8 weights) and optimum's export, made once under ``work``."""
    hf, runs, exports, optimum = work / "hf", work / "runs", work / "exports", work / "optimum"
    if not (hf / "model.safetensors").is_file():
        print("making the random GPT-2 (Hugging Face folder) ...", flush=True)
        _hf_folder(hf)
    if not any(exports.glob("gpt2-small-*/manifest.json")):
        if not any(runs.glob("gpt2-small-*/model.safetensors")):
            print("zoo train gpt2-small --init (one smoke step at lr 1e-30) ...", flush=True)
            _zoo("train", "gpt2-small", "--init", str(hf), "--arg", "activation=gelu_tanh", "--hp",
                 f"tokenizer={hf / 'tokenizer.json'}", "--data", f"text:{hf / 'text.txt'}", "--smoke", "--lr",
                 "1e-30", "--batch-size", "1", "--epochs", "1", "--out", str(runs))
        run = max(runs.glob("gpt2-small-*"))
        print("zoo export --quantize int8 ...", flush=True)
        _zoo("export", str(run), "--out", str(exports), "--quantize", "int8", "--providers", "cpu")
    if not (optimum / "model.onnx").is_file():
        print("optimum-cli export onnx --task text-generation-with-past ...", flush=True)
        subprocess.run([str(optimum_python.parent / "optimum-cli"), "export", "onnx", "--model", str(hf), "--task",
                        "text-generation-with-past", str(optimum)], check=True, env={**os.environ, **OFFLINE})
    return {"hf": hf, "bundle": max(exports.glob("gpt2-small-*")), "optimum": optimum}


def _hf_folder(folder: Path) -> None:
    from pydoc_data.topics import topics

    import torch
    import transformers
    from zoo_lm.tokenizer import train_bpe_json

    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(topics[key] for key in sorted(topics))
    tokenizer = json.loads(train_bpe_json(text, GPT2["vocab_size"]))
    vocab = tokenizer["model"]["vocab"]
    for index in range(GPT2["vocab_size"] - len(vocab)):  # ids no text produces (no merge makes them)
        vocab[f"Ġunused{index}"] = len(vocab)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "text.txt").write_text(text[:120_000])  # enough windows of 1,025 tokens for a smoke step
    torch.manual_seed(0)
    config = transformers.GPT2Config(**GPT2, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(folder, safe_serialization=True)


def _zoo(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "zoo", *args], check=True, cwd=ROOT)


# --- the engines, each in a worker process ----------------------------------------------------------------------

class _Clock:
    """A ``transformers`` streamer that only notes when each new token arrives (the first ``put`` is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if self.prompt_seen:
            self.times.append(time.perf_counter())
        self.prompt_seen = True

    def end(self) -> None:
        pass


def _hf_runner(engine: str, folder: Path, threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    if engine == "optimum":
        import onnxruntime as ort
        from optimum.onnxruntime import ORTModelForCausalLM

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        model = ORTModelForCausalLM.from_pretrained(folder, session_options=options, provider="CPUExecutionProvider")
    else:
        import transformers

        model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()

    def run(ids: list[int], new: int) -> tuple[float, list[float], list[int]]:
        clock = _Clock()
        inputs = torch.tensor([ids])
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=new,
                                 min_new_tokens=new, do_sample=False, num_beams=1, streamer=clock, pad_token_id=0)
        return start, clock.times, out[0, len(ids):].tolist()

    return run


def _zoo_runner(variant: str, bundle: Path, threads: int) -> Any:
    from zoo_lm.generate import LMSession, Sampling

    lm = LMSession(bundle, variant=variant, threads=threads)

    def run(ids: list[int], new: int) -> tuple[float, list[float], list[int]]:
        times: list[float] = []
        start = time.perf_counter()
        tokens = lm.generate([ids], new, Sampling(temperature=0.0), lambda _, __: times.append(time.perf_counter()))
        return start, times, tokens[0]

    return run


def worker(engine: str, folder: Path, threads: int) -> None:
    """Answer one JSON line per request on stdin: {"ids", "new"} → {"prefill_s", "decode_s", "tokens"}."""
    if engine.startswith("zoo-"):
        run = _zoo_runner(engine.split("-", 1)[1], folder, threads)
    else:
        run = _hf_runner(engine, folder, threads)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        start, times, tokens = run(request["ids"], request["new"])
        print(json.dumps({"prefill_s": times[0] - start, "decode_s": times[-1] - times[0], "tokens": tokens,
                          "new": len(times)}), flush=True)


@dataclass
class Worker:
    engine: str
    process: subprocess.Popen

    @classmethod
    def start(cls, engine: str, python: Path, folder: Path, threads: int) -> Worker:
        command = [str(python), str(Path(__file__).resolve()), "--worker", engine, "--folder", str(folder),
                   "--threads", str(threads)]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                   env={**os.environ, **OFFLINE, "OMP_NUM_THREADS": str(threads)})
        return cls(engine, process)

    def read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the {self.engine} worker ended (exit {self.process.wait()})")
        return json.loads(line)

    def ask(self, ids: list[int], new: int) -> dict[str, Any]:
        self.process.stdin.write(json.dumps({"ids": ids, "new": new}) + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return self.read()

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(timeout=60)


# --- the bound ----------------------------------------------------------------------------------------------------

def bandwidth(threads: int, mib: int = 256, repeats: int = 5) -> list[float]:
    """Bytes per second of a numpy copy of a ``mib`` MiB float32 array (read + write counted), split over
    ``threads`` threads, ``repeats`` times."""
    source = np.ones(mib * 2**20 // 4, np.float32)
    target = np.empty_like(source)
    parts = np.array_split(np.arange(len(source)), threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]
    rates = []
    with ThreadPoolExecutor(threads) as pool:
        def copy(span: tuple[int, int]) -> None:
            np.copyto(target[span[0]:span[1]], source[span[0]:span[1]])

        list(pool.map(copy, bounds))  # pages touched once before timing
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(copy, bounds))
            rates.append(2 * source.nbytes / (time.perf_counter() - start))
    return rates


def weight_bytes_per_token(path: Path) -> int:
    """Bytes of initializers one decoding step reads: each one a node reads whole, one row of an embedding table
    that only ``Gather`` reads (an initializer read by several nodes counts once)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    sizes = {}
    for init in model.graph.initializer:
        item = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
        sizes[init.name] = (int(np.prod(init.dims)) * item, int(np.prod(init.dims[1:])) * item)
    whole, row = set(), set()
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            if name in sizes:
                (row if node.op_type == "Gather" and position == 0 else whole).add(name)
    return sum(sizes[n][0] for n in whole) + sum(sizes[n][1] for n in row - whole)


# --- the run ------------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/zoo-lm-vs-optimum"), help="cache of the models")
    parser.add_argument("--optimum-python", type=Path, default=ROOT / ".venv-optimum" / "bin" / "python")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.folder, args.threads)
        return
    paths = prepare(args.work, args.optimum_python)
    if args.prepare_only:
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import header
    from zoo_lm.generate import LMSession

    engines = args.engines.split(",")
    ids = LMSession(paths["bundle"]).encode(PROMPT)
    folders = {"zoo-fp32": paths["bundle"], "zoo-int8": paths["bundle"], "optimum": paths["optimum"],
               "transformers": paths["hf"]}
    started = time.perf_counter()
    workers = [Worker.start(e, args.optimum_python if e == "optimum" else Path(sys.executable), folders[e],
                            args.threads) for e in engines]
    for w in workers:
        w.read()  # loaded
        w.ask(ids, 4)  # warm-up
    rates = bandwidth(args.threads)
    results: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    for index in range(args.rounds):
        order = workers[index % len(workers):] + workers[:index % len(workers)]
        for w in order:
            answer = w.ask(ids, args.new_tokens)
            results[w.engine].append(answer)
        line = ", ".join(f"{e} {(args.new_tokens - 1) / results[e][-1]['decode_s']:.1f}" for e in engines)
        print(f"round {index + 1}: tokens/s {line}", flush=True)
    rates += bandwidth(args.threads)
    for w in workers:
        w.close()
    text = report(args, paths, engines, ids, results, rates, time.perf_counter() - started, header)
    print(text)
    args.out.write_text(text)


def report(args: Any, paths: dict[str, Path], engines: list[str], ids: list[int],
           results: dict[str, list[dict[str, Any]]], rates: list[float], seconds: float, header: Any) -> str:
    import onnxruntime

    graphs = {"zoo-fp32": paths["bundle"] / "lm" / "model.onnx", "zoo-int8": paths["bundle"] / "lm.int8" / "model.onnx",
              "optimum": paths["optimum"] / "model.onnx", "transformers": paths["optimum"] / "model.onnx"}
    best = max(rates)
    per_token = {e: weight_bytes_per_token(graphs[e]) for e in engines}
    per_token["transformers"] = per_token.get("optimum", per_token.get("transformers", 0))  # the same weights
    decode = {e: [(args.new_tokens - 1) / r["decode_s"] for r in results[e]] for e in engines}

    def ratio(engine: str) -> list[float]:
        """Per round: the engine's decode rate over optimum's."""
        return [a / b for a, b in zip(decode[engine], decode["optimum"], strict=True)]

    lines = [header("zoo generate against optimum's ONNX export and transformers: gpt2-small decode at batch 1"),
             f"# command: python benchmarks/lm_vs_optimum.py --threads {args.threads} --new-tokens {args.new_tokens} "
             f"--rounds {args.rounds}; {seconds:.0f} s; ONNX Runtime {onnxruntime.__version__} (CPU provider)",
             f"# prompt: {len(ids)} tokens; {args.new_tokens} new tokens, greedy, batch 1, {args.threads} intra-op "
             "threads everywhere; decode rate = (new - 1) / time from the first new token to the last",
             f"# memory bandwidth (numpy copy of 256 MiB, {args.threads} threads, read + write): best "
             f"{best / 1e9:.2f} GB/s, median {statistics.median(rates) / 1e9:.2f} GB/s over {len(rates)} copies",
             "",
             f"{'engine':<14} {'MB/token':>9} {'bound tok/s':>11} {'decode tok/s':>12} {'(min-max)':>15} "
             f"{'of bound':>8} {'prefill ms':>10} {'vs optimum':>20}"]
    for engine in engines:
        median = statistics.median(decode[engine])
        bound = best / per_token[engine]
        versus = ""
        if "optimum" in decode and engine != "optimum":
            ratios = ratio(engine)
            versus = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        prefill = 1e3 * statistics.median(r["prefill_s"] for r in results[engine])
        lines.append(f"{engine:<14} {per_token[engine] / 1e6:>9.1f} {bound:>11.1f} {median:>12.2f} "
                     f"{f'({min(decode[engine]):.2f}-{max(decode[engine]):.2f})':>15} {median / bound:>8.0%} "
                     f"{prefill:>10.0f} {versus:>20}")
    if "optimum" in decode:
        met = [f"{e} {'meets it' if statistics.median(ratio(e)) >= TARGET else 'does not'} "
               f"(median {statistics.median(ratio(e)):.2f}x)" for e in engines if e.startswith("zoo-")]
        lines += ["", f"target (issue 22): zoo generate at >= {TARGET}x optimum's decode tokens/s: " + ", ".join(met)]
    gate = json.loads((paths["bundle"] / "parity.json").read_text())["graphs"]["lm.int8"]["CPUExecutionProvider"]
    metrics = gate["gate"]["metrics"]
    lines += ["", f"int8 weights, the export's gate on held-out windows: bits per byte {metrics['bits_per_byte']:.4f} "
              f"against fp32's {metrics['reference_bits_per_byte']:.4f} ({100 * metrics['loss_growth']:+.3f} %), "
              f"greedy next token equal at {100 * metrics['token_agreement']:.1f} % of positions "
              f"({'passed' if gate['gate']['passed'] else 'FAILED'}: {gate['gate']['rule']}); random weights, so "
              "the bits per byte are those of a near-uniform model"]
    reference = results[engines[0]][0]["tokens"]
    same = {e: sum(a == b for a, b in zip(results[e][0]["tokens"], reference, strict=True)) for e in engines}
    lines += ["", f"greedy tokens equal to {engines[0]}'s (first round): "
              + ", ".join(f"{e} {same[e]}/{len(reference)}" for e in engines)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
