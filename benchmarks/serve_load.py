"""Load on ``zoo serve`` beside a naive server and LitServe, same graph, same requests, one run (loopback only).

For each image bundle, each server is started on 127.0.0.1, warmed up, then driven by a closed-loop async httpx
client at rising concurrency (each level bounded by --seconds and --max-requests); throughput, p50/p99 latency and
errors per level. Then the language model under ``zoo serve`` at 1, 4 and 16 concurrent streams (time to first
token, tokens/s). The client shares the machine with the servers: figures are for comparison on one machine.

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
from load_client import drive

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
    else:
        command = [sys.executable, str(BASELINES / "litserve_server.py"), str(bundle), "--port", str(port),
                   "--max-batch", str(max_batch), "--batch-timeout", str(delay_ms / 1000)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
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
            drive(urls[server], body, 4, 1.0, 500)  # warm-up
        rows = []
        for concurrency in levels:
            seen: dict[str, list[tuple[float, list[float], int]]] = {s: [] for s in servers}
            for round_ in range(args.rounds):
                order = servers[round_ % len(servers):] + servers[:round_ % len(servers)]
                for server in order:
                    done = drive(urls[server], body, concurrency, args.seconds, args.max_requests)
                    seen[server].append((len(done.latencies) / done.elapsed, done.latencies, done.errors))
            for server in servers:
                speeds = [s for s, _, _ in seen[server]]
                ms = sorted(x * 1000 for _, lat, _ in seen[server] for x in lat) or [float("nan")]
                rows.append(Level(name, server, concurrency, args.rounds, len(ms), sum(e for _, _, e in seen[server]),
                                  round(statistics.median(speeds), 1), round(min(speeds), 1), round(max(speeds), 1),
                                  round(statistics.median(ms), 2), round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2)))
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


def report(rows: list[Level], lm: list[dict], args: argparse.Namespace) -> str:
    lines = [header("zoo serve under load: zoo serve vs a naive FastAPI server vs LitServe (loopback)"),
             f"# {args.rounds} rounds of {args.seconds:g} s per server and concurrency, servers in turn (at most "
             f"{args.max_requests} requests a round), closed-loop async httpx client on the same machine; batches "
             f"of up to {args.max_batch} rows (zoo serve --max-delay-ms {args.delay_ms:g}, LitServe batch_timeout "
             f"{args.litserve_timeout_ms:g} ms); one worker process each; ONNX Runtime CPU, default threads", ""]
    for bundle in dict.fromkeys(r.bundle for r in rows):
        lines += [f"## {bundle}", "", "| server | concurrency | requests/s (median) | min - max | p50 ms | p99 ms | "
                                      "answered | errors |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r.server} | {r.concurrency} | {r.throughput} | {r.throughput_min} - {r.throughput_max} | "
                  f"{r.p50_ms} | {r.p99_ms} | {r.requests} | {r.errors} |" for r in rows if r.bundle == bundle]
        naive = {r.concurrency: r.throughput for r in rows if r.bundle == bundle and r.server == "naive"}
        for server in ("zoo", "litserve"):
            ratios = [f"{c}: {r.throughput / naive[c]:.2f}x" for r in rows for c in [r.concurrency]
                      if r.bundle == bundle and r.server == server and naive.get(c)]
            if ratios:
                lines.append(f"\n{server} / naive throughput by concurrency: {', '.join(ratios)}")
        lines.append("")
    if lm:
        lines += ["## language model (zoo serve /v1/completions, streamed, greedy; one sequence at a time per worker)",
                  "", "| streams | requests | tokens | seconds | tokens/s | TTFT p50 ms | TTFT max ms |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['streams']} | {r['requests']} | {r['tokens']} | {r['seconds']} | {r['tokens_per_s']} | "
                  f"{r['ttft_p50_ms']} | {r['ttft_max_ms']} |" for r in lm]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", action="append", default=[], help="NAME=FOLDER of an image graph (repeat)")
    parser.add_argument("--lm", help="a language-model bundle")
    parser.add_argument("--servers", default="zoo,naive,litserve")
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
    for item in args.bundle:
        name, _, folder = item.partition("=")
        rows += run_images(name, Path(folder), args.servers.split(","), levels, args)
    lm = run_lm(Path(args.lm), [int(s) for s in args.streams.split(",")], 2, args.lm_tokens) if args.lm else []
    text = report(rows, lm, args)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps({"images": [asdict(r) for r in rows], "lm": lm},
                                                              indent=1))
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
