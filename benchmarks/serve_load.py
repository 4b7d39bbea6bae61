"""Load on ``zoo serve`` beside a naive server, LitServe and BentoML: same graph, same requests, one run, loopback.

For each image bundle, each server is started on 127.0.0.1, warmed up, then driven by the same closed-loop client
(benchmarks/load_client.py: pre-encoded body, keep-alive connections, no HTTP library) at rising concurrency (each
level bounded by --seconds and --max-requests); throughput, p50/p99 latency, errors, and the CPU time the server
(all its processes) and the client spent per answered request: on a shared machine the CPU per request
says what each server costs even when the wall-clock figures are squeezed by other work. Before the servers, the
graph alone in ONNX Runtime at batch 1, 8 and 64 (ms per image): what batching can save in compute on this
machine. Then the language model under ``zoo serve`` at 1, 4 and 16 concurrent streams (time to first token,
tokens/s). The client shares the machine with the servers: figures are for comparison on one machine.

    python benchmarks/serve_load.py --bundle cnn=exports/cnn-... --bundle resnet18=exports/resnet18-... \
        --lm exports/gpt-nano-... [--concurrency 1,4,16,64] [--seconds 4] [--out benchmarks/results/serve_load.md]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, header
from load_client import Result, drive

BASELINES = Path(__file__).resolve().parent / "serve_baselines"


@dataclass
class Level:
    """One server at one concurrency, over every round: medians and spreads."""

    bundle: str
    server: str
    concurrency: int
    rounds: int
    requests: int
    errors: int
    throughput: float
    throughput_min: float
    throughput_max: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float
    client_cpu_ms: float


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and every live process under it (Linux /proc): a
    server's workers too, whatever session or process group they put themselves in."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    children: dict[int, list[int]] = {}
    for child, ppid in parent.items():
        children.setdefault(ppid, []).append(child)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu.get(current, 0.0)
        todo += children.get(current, [])
    return total


def compute_per_image(bundle: Path, batches: tuple[int, ...] = (1, 8, 64), budget_s: float = 1.0
                      ) -> dict[str, dict[str, float]]:
    """The graph alone in ONNX Runtime (CPU provider, default threads), per batch size: wall and CPU milliseconds
    per image with ORT's defaults (thread spinning on, as the naive server and the frameworks run it) and CPU
    milliseconds per image with spinning off (as zoo serve runs it). CPU time is what a batch really saves on a
    machine whose cores are all busy anyway."""
    import onnxruntime as ort

    from zoo.bundles import Bundle

    opened = Bundle.open(bundle)
    entry = next(iter(opened.manifest.graphs.values()))
    info = entry.inputs[0]
    result: dict[str, dict[str, float]] = {str(batch): {} for batch in batches}
    for spinning in ("1", "0"):
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        session = ort.InferenceSession(str(opened.graph_path(entry)), options, providers=["CPUExecutionProvider"])
        for batch in batches:
            feed = {info.name: np.random.default_rng(0).standard_normal([batch, *info.shape[1:]]).astype(np.float32)}
            session.run(None, feed)
            runs, wall, cpu = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() < wall + budget_s or runs < 3:
                session.run(None, feed)
                runs += 1
            images = runs * batch
            if spinning == "1":
                result[str(batch)]["wall_ms"] = round((time.perf_counter() - wall) / images * 1000, 3)
                result[str(batch)]["cpu_ms"] = round((time.process_time() - cpu) / images * 1000, 3)
            else:
                result[str(batch)]["cpu_ms_no_spin"] = round((time.process_time() - cpu) / images * 1000, 3)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(server: str, bundle: Path, port: int, max_batch: int, delay_ms: float) -> subprocess.Popen:
    """The server in a session of its own, so that stopping it stops every process it started."""
    if server == "zoo":
        command = [sys.executable, "-m", "zoo", "serve", f"model={bundle}", "--port", str(port), "--max-batch",
                   str(max_batch), "--max-delay-ms", str(delay_ms), "--max-queue", "1024"]
    elif server == "naive":
        command = [sys.executable, str(BASELINES / "naive.py"), str(bundle), "--port", str(port)]
    elif server == "bentoml":
        command = [sys.executable, "-m", "bentoml", "serve", "bentoml_service:BundleService", "--host", "127.0.0.1",
                   "--port", str(port), "--working-dir", str(BASELINES)]
    else:
        command = [sys.executable, str(BASELINES / "litserve_server.py"), str(bundle), "--port", str(port),
                   "--max-batch", str(max_batch), "--batch-timeout", str(delay_ms / 1000)]
    env = {**os.environ, "ZOO_BENCH_BUNDLE": str(bundle), "ZOO_BENCH_MAX_BATCH": str(max_batch)}
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group (LitServe's workers too), then SIGKILL after 30 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    with contextlib.suppress(ProcessLookupError):  # children that outlived their parent
        os.killpg(proc.pid, signal.SIGKILL)


def wait_up(url: str, proc: subprocess.Popen, body: bytes, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering {url}")
        try:
            reply = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=5)
            if reply.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} did not answer within {limit_s} s")


def image_body(bundle: Path) -> bytes:
    manifest = json.loads((bundle / "manifest.json").read_text())
    graph = next(iter(manifest["graphs"].values()))
    info = graph["inputs"][0]
    shape = [1, *[d for d in info["shape"][1:]]]
    data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return json.dumps({"inputs": [{"name": info["name"], "shape": shape, "datatype": "FP32",
                                   "data": data.ravel().tolist()}]}).encode()


def level(bundle: str, server: str, concurrency: int, rounds: list[tuple[Result, float]]) -> Level:
    """One server at one concurrency from its rounds (each a client result and the server's CPU seconds)."""
    speeds = [len(done.latencies) / done.elapsed for done, _ in rounds]
    ms = sorted(x * 1000 for done, _ in rounds for x in done.latencies) or [float("nan")]
    answered = sum(len(done.latencies) for done, _ in rounds)
    per = max(1, answered)
    return Level(bundle, server, concurrency, len(rounds), answered, sum(done.errors for done, _ in rounds),
                 round(statistics.median(speeds), 1), round(min(speeds), 1), round(max(speeds), 1),
                 round(statistics.median(ms), 2), round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
                 round(sum(cpu for _, cpu in rounds) / per * 1000, 3),
                 round(sum(done.client_cpu_s for done, _ in rounds) / per * 1000, 3))


def run_images(name: str, bundle: Path, servers: list[str], levels: list[int], args: argparse.Namespace
               ) -> list[Level]:
    """Every server up at once (idle ones sleep); at each concurrency, rounds of every server in turn, so that
    the machine's changing load falls on all of them alike."""
    body = image_body(bundle)
    running, urls = {}, {}
    try:
        for server in servers:
            port = free_port()
            running[server] = start(server, bundle, port, args.max_batch,
                                    args.litserve_timeout_ms if server == "litserve" else args.delay_ms)
            urls[server] = f"http://127.0.0.1:{port}" + ("/predict" if server == "litserve" else
                                                         "/v2/models/model/infer")
        for server in servers:
            wait_up(urls[server], running[server], body)
            drive(urls[server], body, 16, 2.0, 5000)  # warm-up (BentoML's adaptive batching learns its timings)
        rows = []
        for concurrency in levels:
            seen: dict[str, list[tuple[Result, float]]] = {s: [] for s in servers}
            for round_ in range(args.rounds):
                order = servers[round_ % len(servers):] + servers[:round_ % len(servers)]
                for server in order:
                    cpu = tree_cpu_s(running[server].pid)
                    done = drive(urls[server], body, concurrency, args.seconds, args.max_requests)
                    seen[server].append((done, tree_cpu_s(running[server].pid) - cpu))
            for server in servers:
                rows.append(level(name, server, concurrency, seen[server]))
                print(rows[-1], flush=True)
        return rows
    finally:
        for proc in running.values():
            stop(proc)


async def stream_one(client: httpx.AsyncClient, url: str, max_tokens: int) -> tuple[float, int, float]:
    """Time to first token, tokens received, seconds for the whole stream."""
    body = {"model": "lm", "prompt": "The ", "max_tokens": max_tokens, "temperature": 0, "stream": True}
    started = time.perf_counter()
    first, pieces = None, 0
    async with client.stream("POST", url, json=body) as reply:
        async for line in reply.aiter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                if event["choices"][0]["text"]:
                    first = first or time.perf_counter() - started
                    pieces += 1
                usage = event.get("usage")
                if usage:
                    pieces = usage["completion_tokens"]
    return first or float("nan"), pieces, time.perf_counter() - started


def run_lm(bundle: Path, streams: list[int], rounds: int, max_tokens: int) -> list[dict]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", f"lm={bundle}", "--port", str(port),
                             "--max-queue", "256", "--timeout-s", "300"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1/completions"
    rows = []
    try:
        wait_up(url, proc, json.dumps({"model": "lm", "prompt": "The ", "max_tokens": 2}).encode())
        for count in streams:
            async def level(count: int = count) -> tuple[list[tuple[float, int, float]], float]:
                """``rounds`` times in a row, ``count`` streams at once."""
                done: list[tuple[float, int, float]] = []
                async with httpx.AsyncClient(timeout=300) as client:
                    started = time.perf_counter()
                    for _ in range(rounds):
                        done += await asyncio.gather(*(stream_one(client, url, max_tokens) for _ in range(count)))
                    return done, time.perf_counter() - started

            done, elapsed = asyncio.run(level())
            ttft = sorted(d[0] * 1000 for d in done)
            rows.append({"streams": count, "requests": len(done), "tokens": sum(d[1] for d in done),
                         "seconds": round(elapsed, 2), "tokens_per_s": round(sum(d[1] for d in done) / elapsed, 1),
                         "ttft_p50_ms": round(statistics.median(ttft), 1), "ttft_max_ms": round(ttft[-1], 1)})
            print(rows[-1], flush=True)
    finally:
        stop(proc)
    return rows


SERVERS = {
    "zoo": "`zoo serve model=BUNDLE --max-batch {batch} --max-delay-ms {delay:g} --max-queue 1024`: one worker "
           "process, Starlette on uvicorn (uvloop, httptools), dynamic batching, ONNX Runtime default threads, "
           "thread spinning off",
    "naive": "benchmarks/serve_baselines/naive.py: FastAPI on uvicorn (defaults, which pick uvloop and httptools when "
             "installed), a sync endpoint (FastAPI's thread pool), one ONNX Runtime session shared by every request "
             "with its defaults, one run per request, no batching",
    "litserve": "benchmarks/serve_baselines/litserve_server.py: LitServe with its own batching (max_batch_size "
                "{batch}, batch_timeout {litserve:g} ms), one worker, one ONNX Runtime session with its defaults",
    "bentoml": "benchmarks/serve_baselines/bentoml_service.py: BentoML with its adaptive batching (batchable API, "
               "max_batch_size {batch}, max_latency_ms 30000), one worker, its default request logging, one ONNX "
               "Runtime session with its defaults",
}


def report(rows: list[Level], compute: dict[str, dict[str, float]], lm: list[dict], args: argparse.Namespace
           ) -> str:
    servers = [s for s in SERVERS if any(r.server == s for r in rows)]
    lines = [header("zoo serve under load: zoo serve vs a naive FastAPI server, LitServe and BentoML (loopback)"),
             f"# {args.rounds} rounds of {args.seconds:g} s per server and concurrency, servers in turn (at most "
             f"{args.max_requests} requests a round); the same Open Inference Protocol JSON body for every server; "
             "one closed-loop client for all (benchmarks/load_client.py: keep-alive connections, pre-encoded "
             "request, uvloop, no HTTP library) on the same machine", "",
             *[f"- **{s}**: " + SERVERS[s].format(batch=args.max_batch, delay=args.delay_ms,
                                                  litserve=args.litserve_timeout_ms) for s in servers],
             "- server CPU: CPU time of the server's processes per answered request (its Python, ONNX Runtime's "
             "threads); client CPU: the load generator's own, per answered request", ""]
    if compute:
        batches = list(next(iter(compute.values())))
        lines += ["## the graphs alone in ONNX Runtime (CPU provider, default threads): ms per image by batch size",
                  "", "wall and CPU with ORT's defaults (thread spinning on: the naive server, LitServe, BentoML); "
                  "CPU with spinning off (zoo serve)", "",
                  "| graph | " + " | ".join(f"batch {b} wall / CPU / CPU no spin" for b in batches) + " |",
                  "| --- |" + " ---: |" * len(batches)]
        lines += [f"| {name} | " + " | ".join(f"{v['wall_ms']} / {v['cpu_ms']} / {v['cpu_ms_no_spin']}"
                                              for v in per.values()) + " |" for name, per in compute.items()]
        lines.append("")
    for bundle in dict.fromkeys(r.bundle for r in rows):
        lines += [f"## {bundle}", "", "| server | concurrency | requests/s (median) | min - max | p50 ms | p99 ms | "
                                      "server CPU ms/request | client CPU ms/request | answered | errors |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r.server} | {r.concurrency} | {r.throughput} | {r.throughput_min} - {r.throughput_max} | "
                  f"{r.p50_ms} | {r.p99_ms} | {r.server_cpu_ms} | {r.client_cpu_ms} | {r.requests} | {r.errors} |"
                  for r in rows if r.bundle == bundle]
        naive = {r.concurrency: r for r in rows if r.bundle == bundle and r.server == "naive"}
        for server in ("zoo", "litserve", "bentoml"):
            ratios = [f"{c}: {r.throughput / naive[c].throughput:.2f}x" for r in rows for c in [r.concurrency]
                      if r.bundle == bundle and r.server == server and c in naive and naive[c].throughput]
            if ratios:
                lines.append(f"\n{server} / naive throughput by concurrency: {', '.join(ratios)}")
            cpu = [f"{c}: {naive[c].server_cpu_ms / r.server_cpu_ms:.2f}x" for r in rows for c in [r.concurrency]
                   if r.bundle == bundle and r.server == server and c in naive and r.server_cpu_ms]
            if cpu:
                lines.append(f"\nnaive / {server} server CPU per request by concurrency: {', '.join(cpu)}")
        lines.append("")
    if lm:
        lines += ["## language model (zoo serve /v1/completions, streamed, greedy; one request at a time per worker)",
                  "", "| streams | requests | tokens | seconds | tokens/s | TTFT p50 ms | TTFT max ms |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['streams']} | {r['requests']} | {r['tokens']} | {r['seconds']} | {r['tokens_per_s']} | "
                  f"{r['ttft_p50_ms']} | {r['ttft_max_ms']} |" for r in lm]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", action="append", default=[], help="NAME=FOLDER of an image graph (repeat)")
    parser.add_argument("--lm", help="a language-model bundle")
    parser.add_argument("--servers", default="zoo,naive,litserve,bentoml")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--streams", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="zoo serve --max-delay-ms")
    parser.add_argument("--litserve-timeout-ms", type=float, default=1.0, help="LitServe's batch_timeout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lm-tokens", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_load.md"))
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    rows: list[Level] = []
    bundles = dict(item.partition("=")[::2] for item in args.bundle)
    compute = {name: compute_per_image(Path(folder)) for name, folder in bundles.items()}
    for name, per in compute.items():
        print(name, "ms per image by batch:", per, flush=True)
    for name, folder in bundles.items():
        rows += run_images(name, Path(folder), args.servers.split(","), levels, args)
    lm = run_lm(Path(args.lm), [int(s) for s in args.streams.split(",")], 2, args.lm_tokens) if args.lm else []
    text = report(rows, compute, lm, args)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps({"compute_ms_per_image": compute, "images": [
        asdict(r) for r in rows], "lm": lm}, indent=1))
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
