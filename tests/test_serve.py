"""``zoo serve``: the Open Inference Protocol (tritonclient), role endpoints (as ``zoo predict``), OpenAI completions
(the ``openai`` client, as ``zoo generate``), dynamic batching, and behaviour under load and faults. Every server
listens on 127.0.0.1; every load loop is bounded in count and time."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.serve.options import ServeOptions

from .helpers import assert_one_line_error
from .serve_harness import ProcessServer, ThreadServer

PROMPTS = ["The ", "def f(x):", "Ü"]


@pytest.fixture(scope="module")
def cnn_bundle(export_briefly) -> Path:
    return Path(export_briefly("cnn").bundle_dir)


@pytest.fixture(scope="module")
def lm_bundle(export_briefly) -> Path:
    return Path(export_briefly("gpt-nano").bundle_dir)


@pytest.fixture(scope="module")
def server(cnn_bundle: Path, lm_bundle: Path):
    options = ServeOptions(bundles={"cnn": str(cnn_bundle), "lm": str(lm_bundle)}, max_delay_ms=2)
    with ThreadServer(options) as running:
        yield running


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(8, 8), (20, 16), (8, 8)]):
        path = folder / f"digit{i}.png"
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def digits_batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 8, 8)).astype(np.float32)


def ort_outputs(bundle: Path, feed: np.ndarray) -> dict[str, np.ndarray]:
    from zoo.bundles import Bundle
    from zoo.ort import CPU, session

    opened = Bundle.open(bundle)
    entry = opened.manifest.graphs["model"]
    values = session(str(opened.graph_path(entry)), CPU).run(None, {entry.input_names[0]: feed})
    return dict(zip(entry.output_names, values, strict=True))


def infer_json(url: str, model: str, feed: np.ndarray, name: str = "input", **client: object) -> httpx.Response:
    body = {"inputs": [{"name": name, "shape": list(feed.shape), "datatype": "FP32", "data": feed.ravel().tolist()}]}
    return httpx.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30, **client)  # type: ignore[arg-type]


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples with those labels (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        named = line.startswith(name + "{") or line.startswith(name + " ")
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- protocols ---------------------------------------------------------------------------------------------------


def test_tritonclient_health_metadata_and_infer_equal_onnxruntime(server: ThreadServer, cnn_bundle: Path) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("cnn")
    meta = client.get_model_metadata("cnn")
    manifest = json.loads((cnn_bundle / "manifest.json").read_text())["graphs"]["model"]
    assert [i["name"] for i in meta["inputs"]] == [i["name"] for i in manifest["inputs"]]
    assert meta["inputs"][0]["datatype"] == "FP32" and meta["inputs"][0]["shape"][0] == -1
    assert meta["outputs"][0]["name"] == manifest["outputs"][0]["name"]
    feed = digits_batch(3)
    expected = ort_outputs(cnn_bundle, feed)
    name, out = meta["inputs"][0]["name"], meta["outputs"][0]["name"]
    for binary in (True, False):  # the binary tensor extension and plain JSON
        tensor = triton.InferInput(name, list(feed.shape), "FP32")
        tensor.set_data_from_numpy(feed, binary_data=binary)
        result = client.infer("cnn", [tensor], outputs=[triton.InferRequestedOutput(out, binary_data=binary)])
        np.testing.assert_array_equal(result.as_numpy(out), expected[out])
    with pytest.raises(Exception, match="no model named"):
        client.get_model_metadata("nope")


def test_predict_endpoint_gives_the_rows_of_zoo_predict(server: ThreadServer, cnn_bundle: Path,
                                                          images: list[Path]) -> None:
    from zoo.predict import predict_files

    expected = [row.to_dict() for row in predict_files(cnn_bundle, [str(p) for p in images], top=2)]
    files = [("image", (p.name, p.read_bytes(), "image/png")) for p in images]
    reply = httpx.post(f"{server.url}/v1/models/cnn/predict?top=2", files=files, timeout=30)
    assert reply.status_code == 200, reply.text
    got = reply.json()["rows"]
    for mine, theirs, path in zip(got, expected, images, strict=True):
        assert mine["input"] == mine["image"] == path.name  # the name the client sent, not a server path
        assert set(mine) == set(theirs)
        assert (mine["summary"], mine["class"], mine["index"]) == (theirs["summary"], theirs["class"], theirs["index"])
        assert mine["probabilities"] == pytest.approx(theirs["probabilities"], rel=1e-6, abs=1e-9)
    one = httpx.post(f"{server.url}/v1/models/cnn/predict", content=images[0].read_bytes(), timeout=30)
    assert one.json()["rows"][0]["class"] == expected[0]["class"]


def test_openai_completions_equal_zoo_generate(server: ThreadServer, lm_bundle: Path) -> None:
    from openai import OpenAI
    from zoo_lm.generate import Sampling, generate_text

    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["lm"]
    for prompt in PROMPTS:
        expected = generate_text(lm_bundle, prompt, max_new_tokens=12, sampling=Sampling(temperature=0))
        whole = client.completions.create(model="lm", prompt=prompt, max_tokens=12, temperature=0)
        assert whole.choices[0].text == expected["text"]
        assert whole.usage.completion_tokens == len(expected["tokens"])
        assert whole.choices[0].finish_reason == "length"
        streamed = client.completions.create(model="lm", prompt=prompt, max_tokens=12, temperature=0, stream=True)
        assert "".join(chunk.choices[0].text for chunk in streamed) == expected["text"]
    text = generate_text(lm_bundle, "The ", max_new_tokens=20, sampling=Sampling(temperature=0))["text"]
    stop = text[3:5]  # a stop string that the greedy continuation contains
    cut = client.completions.create(model="lm", prompt="The ", max_tokens=20, temperature=0, stop=[stop])
    assert cut.choices[0].text == text[:text.find(stop)] and cut.choices[0].finish_reason == "stop"
    sampled = [client.completions.create(model="lm", prompt="The ", max_tokens=8, temperature=0.8, top_p=0.9,
                                         seed=3).choices[0].text for _ in range(2)]
    assert sampled[0] == sampled[1]  # the seed fixes the draw


CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + m['role']) }}{% endif %}"
    "<|{{ m['role'] }}|>\n{{ m['content'] | trim }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture(scope="module")
def chat_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face tokenizer_config.json with a chat template (an AddedToken-style bos_token)."""
    path = tmp_path_factory.mktemp("chat") / "tokenizer_config.json"
    path.write_text(json.dumps({"chat_template": CHAT_TEMPLATE, "bos_token": {"content": "§", "special": True},
                                "eos_token": "¶"}))
    return path


def test_openai_chat_completions_render_the_template_like_transformers(lm_bundle: Path, chat_config: Path,
                                                                       server: ThreadServer) -> None:
    from openai import NotFoundError, OpenAI
    from transformers import PreTrainedTokenizerFast

    messages = [{"role": "system", "content": "Be brief. "}, {"role": "user", "content": "The "}]
    reference = PreTrainedTokenizerFast(tokenizer_file=str(lm_bundle / "lm" / "tokenizer.json"),
                                        chat_template=CHAT_TEMPLATE, bos_token="§", eos_token="¶")
    prompt = reference.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "§<|system|>\nBe brief.\n<|user|>\nThe\n<|assistant|>\n"
    with pytest.raises(NotFoundError, match="no chat template"):  # the module's server has none
        OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0).chat.completions.create(
            model="lm", messages=messages)
    options = ServeOptions(bundles={"lm": str(lm_bundle)}, chat_template=str(chat_config))
    with ThreadServer(options) as running:
        client = OpenAI(base_url=f"{running.url}/v1", api_key="unused", max_retries=0)
        plain = client.completions.create(model="lm", prompt=prompt, max_tokens=10, temperature=0)
        chat = client.chat.completions.create(model="lm", messages=messages, max_tokens=10, temperature=0)
        assert chat.choices[0].message.content == plain.choices[0].text
        assert chat.choices[0].message.role == "assistant" and chat.usage == plain.usage
        streamed = client.chat.completions.create(model="lm", messages=messages, max_tokens=10, temperature=0,
                                                  stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == plain.choices[0].text
        refused = httpx.post(f"{running.url}/v1/chat/completions", timeout=30, json={
            "model": "lm", "messages": [{"role": "tool", "content": "x"}]})
        assert refused.status_code == 400 and "unknown role tool" in refused.json()["error"]["message"]
        empty = httpx.post(f"{running.url}/v1/chat/completions", json={"model": "lm", "messages": []}, timeout=30)
        assert empty.status_code == 422 and "messages" in empty.json()["error"]["message"]


def test_a_bad_chat_template_is_one_line(tmp_path: Path, lm_bundle: Path) -> None:
    runner = CliRunner()
    no_template = tmp_path / "tokenizer_config.json"
    no_template.write_text("{}")
    assert_one_line_error(runner.invoke(cli, ["serve", str(lm_bundle), "--chat-template", str(no_template)]),
                          "has no 'chat_template'")
    broken = tmp_path / "chat.jinja"
    broken.write_text("{% for m in messages %}")
    assert_one_line_error(runner.invoke(cli, ["serve", str(lm_bundle), "--chat-template", str(broken)]),
                          "does not compile")


def test_a_list_of_prompts_is_one_batch_with_a_choice_each(server: ThreadServer, lm_bundle: Path) -> None:
    """``prompt`` as a list (the openai client sends it as it is): one choice per prompt, in order, each what the
    prompt gives alone (sampled: the smoke run's greedy text is one letter repeated); a stop string ends one row
    while the others run on; streamed pieces carry their choice's index."""
    from openai import OpenAI
    from zoo_lm.generate import Sampling, generate_text

    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    asked = {"model": "lm", "prompt": PROMPTS, "max_tokens": 16, "temperature": 0.8, "top_p": 0.9, "seed": 3}
    drawn = Sampling(temperature=0.8, top_p=0.9, seed=3)
    alone = [generate_text(lm_bundle, p, max_new_tokens=16, sampling=drawn)["text"] for p in PROMPTS]
    whole = client.completions.create(**asked)
    assert [c.index for c in whole.choices] == [0, 1, 2] and [c.text for c in whole.choices] == alone
    assert whole.usage.completion_tokens == 48 and {c.finish_reason for c in whole.choices} == {"length"}
    stop = next(alone[0][i:i + 3] for i in range(2, len(alone[0]) - 3) if alone[0][i:i + 3] not in alone[1])
    cut = client.completions.create(**asked, stop=[stop])
    assert cut.choices[0].text == alone[0][:alone[0].find(stop)] and cut.choices[0].finish_reason == "stop"
    assert cut.choices[1].text == alone[1] and cut.choices[1].finish_reason == "length"
    streamed = ["", "", ""]
    for chunk in client.completions.create(**asked, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] += choice.text
    assert streamed == alone


def test_the_default_generate_batch_runs_rows_one_after_another() -> None:
    """A plugin's TextGenerator without its own batch: ``generate_batch`` runs each request through ``generate``,
    and a row said to be finished stops there."""
    from zoo.role_handlers import GenerateRequest, TextGenerator

    class Counting(TextGenerator):
        def generate(self, request, on_token):
            out = []
            for i in range(request.max_new_tokens):
                out.append(request.prompt_ids[0] + i)
                on_token(out[-1])
            return out

    seen: list[tuple[int, int]] = []
    rows = Counting().generate_batch([GenerateRequest((10,), 3), GenerateRequest((20,), 3)],
                                     lambda row, token: seen.append((row, token)),
                                     lambda row: row == 1 and len([s for s in seen if s[0] == 1]) == 2)
    assert rows == [[10, 11, 12], [20, 21]] and seen == [(0, 10), (0, 11), (0, 12), (1, 20), (1, 21)]


def test_sample_endpoint_draws_what_zoo_sample_draws(export_briefly, tmp_path: Path) -> None:
    from PIL import Image

    from zoo.sampling import sample_bundle

    bundle = Path(export_briefly("cgan").bundle_dir)  # conditional: one class per column, labels fed too
    expected = np.asarray(Image.open(sample_bundle(bundle, n=20, seed=4, out=tmp_path / "cli.png")))
    with ThreadServer(ServeOptions(bundles={"gan": str(bundle)})) as running:
        reply = httpx.post(f"{running.url}/v1/models/gan/sample", json={"n": 20, "seed": 4}, timeout=30)
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(reply.content))), expected)
        pixels = httpx.post(f"{running.url}/v1/models/gan/sample", json={"n": 2, "format": "json"}, timeout=30)
        assert np.asarray(pixels.json()["pixels"]).shape[0] == 2
        for body, words in (({"n": 0}, "'n'"), ({"seed": -1}, "'seed'"), ({"format": "gif"}, "'format'")):
            refused = httpx.post(f"{running.url}/v1/models/gan/sample", json=body, timeout=30)
            assert refused.status_code == 422 and words in refused.json()["error"]


# --- batching ------------------------------------------------------------------------------------------------------


def test_concurrent_requests_run_as_batches_with_one_by_one_results(cnn_bundle: Path) -> None:
    # a name of its own: metrics are per process, and the module's server also serves "cnn"
    options = ServeOptions(bundles={"batched": str(cnn_bundle)}, max_delay_ms=300, max_batch=64)
    feeds = [digits_batch(1 + i % 3, seed=i) for i in range(12)]
    with ThreadServer(options) as running, ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(lambda f: infer_json(running.url, "batched", f), feeds))
        rows = metric(running.url, "zoo_serve_batch_rows_sum", model="batched.model")
        calls = metric(running.url, "zoo_serve_batch_rows_count", model="batched.model")
    assert rows == sum(len(f) for f in feeds)
    assert calls < len(feeds)  # some requests shared a call
    for feed, reply in zip(feeds, replies, strict=True):
        assert reply.status_code == 200, reply.text
        out = reply.json()["outputs"][0]
        alone = next(iter(ort_outputs(cnn_bundle, feed).values()))
        got = np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
        np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-6)  # concatenated rows; same argmax
        assert (got.argmax(1) == alone.argmax(1)).all()


def test_fast_graphs_run_on_the_event_loop_slow_ones_in_the_batch_thread() -> None:
    """A graph whose batches take under INLINE_BELOW_S runs on the event loop once it has been timed; a slow one stays
    in the batcher's thread; answers and rows are the same either way, and a request past its time limit is a 504."""
    import asyncio
    import threading

    from zoo.serve.batching import INLINE_BELOW_S, Batcher
    from zoo.serve.errors import ServeError

    async def scenario(pause_s: float) -> tuple[list[str], list[np.ndarray]]:
        threads: list[str] = []

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            threads.append(threading.current_thread().name)
            time.sleep(pause_s)
            return {"y": feeds["x"] * 2}

        batcher = Batcher("g", run, max_batch=8, max_delay_s=0.0, max_queue=16)
        outputs = []
        for i in range(8):  # one at a time: each is a batch of its own
            outputs.append((await batcher.submit({"x": np.full((2, 3), i, np.float32)}))["y"])
        await batcher.close()
        ran = len(threads)
        waiting = Batcher("w", run, max_batch=8, max_delay_s=5.0, max_queue=4)  # a batch waits 5 s for company
        with pytest.raises(ServeError) as refused:
            await waiting.submit({"x": np.zeros((1, 3), np.float32)}, timeout_s=0.05)
        assert refused.value.status == 504 and "timeout-s" in refused.value.message
        await waiting.close()
        assert len(threads) == ran  # the request that timed out was dropped, never run
        return threads, outputs

    fast_threads, fast_out = asyncio.run(scenario(0.0))
    slow_threads, slow_out = asyncio.run(scenario(INLINE_BELOW_S * 5))
    assert fast_threads[0].startswith("batch-g") and "MainThread" in fast_threads[1:8]  # once timed: inline
    assert all(t.startswith("batch-g") for t in slow_threads[:8])
    for i, (fast, slow) in enumerate(zip(fast_out, slow_out, strict=True)):
        np.testing.assert_array_equal(fast, np.full((2, 3), 2 * i, np.float32))
        np.testing.assert_array_equal(slow, fast)


def test_a_response_leaves_in_one_write() -> None:
    """zoo.serve.protocol: the header and body writes of one event-loop turn reach the socket as one write, in
    order; a close flushes first; nothing is written to a transport that is closing."""
    import asyncio

    from zoo.serve.protocol import GatheringTransport

    class Recorder:
        def __init__(self) -> None:
            self.writes: list[bytes] = []
            self.closed = False

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def is_closing(self) -> bool:
            return self.closed

        def close(self) -> None:
            self.closed = True

        def get_extra_info(self, name: str) -> str:
            return f"info:{name}"

    async def scenario() -> tuple[Recorder, Recorder, Recorder]:
        loop = asyncio.get_running_loop()
        one, two, gone = Recorder(), Recorder(), Recorder()
        gathered = GatheringTransport(one, loop)  # type: ignore[arg-type]
        gathered.write(b"HTTP/1.1 200 OK\r\n\r\n")
        gathered.write(b"body")
        assert one.writes == [] and gathered.get_extra_info("peername") == "info:peername"
        await asyncio.sleep(0)  # the turn ends
        gathered.write(b"next")
        await asyncio.sleep(0)
        closing = GatheringTransport(two, loop)  # type: ignore[arg-type]
        closing.write(b"last words")
        closing.close()  # before the turn ends: written, then closed
        dropped = GatheringTransport(gone, loop)  # type: ignore[arg-type]
        dropped.write(b"late")
        gone.closed = True  # the peer went away before the flush
        await asyncio.sleep(0)
        return one, two, gone

    one, two, gone = asyncio.run(scenario())
    assert one.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]
    assert two.writes == [b"last words"] and two.closed
    assert gone.writes == []


def test_the_load_generator_counts_answers_and_errors(server: ThreadServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/load_client.py (the serve_load client): 200s are answered, a 404 or a refused port an error."""
    import importlib

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    client = importlib.import_module("load_client")
    feed = digits_batch(1)
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32",
                                   "data": feed.ravel().tolist()}]}).encode()
    done = client.drive(f"{server.url}/v2/models/cnn/infer", body, 3, 5.0, 30)
    assert len(done.latencies) == 30 and done.errors == 0 and done.client_cpu_s > 0
    missing = client.drive(f"{server.url}/v2/models/nope/infer", body, 2, 5.0, 6)
    assert not missing.latencies and missing.errors == 6
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        refused = client.drive(f"http://127.0.0.1:{port}/", body, 1, 5.0, 3)
    assert not refused.latencies and refused.errors == 3


# --- bad input -----------------------------------------------------------------------------------------------------


BAD = [
    ("/v2/models/cnn/infer", b"{not json", 400, "not JSON"),
    ("/v2/models/cnn/infer", b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [NaN]}]}', 400,
     "not JSON"),  # NaN is no JSON number
    ("/v2/models/cnn/infer", b'{"inputs": 3}', 400, "'inputs' list"),
    ("/v2/models/cnn/infer", b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}', 400,
     "not one of the graph's inputs"),
    ("/v2/models/cnn/infer", b'{"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "INT64",'
                             b' "data": [1]}]}', 400, "is FP32"),
    ("/v2/models/cnn/infer", b'{"inputs": [{"name": "input", "shape": [1, 1, 4, 4], "datatype": "FP32",'
                             b' "data": [0]}]}', 400, "shape"),
    ("/v2/models/cnn/infer", b'{"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32",'
                             b' "data": [1, 2]}]}', 400, "do not fill"),
    ("/v2/models/cnn/infer", b'{"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32",'
                             b' "data": ["a"]}]}', 400, "not FP32"),
    ("/v2/models/nope/infer", b"{}", 404, "no model named"),
    ("/v2/models/cnn.nograph/infer", b"{}", 404, "has no graph"),
    ("/v1/models/cnn/predict", b"not an image", 400, "not a readable image"),
    ("/v1/models/lm/predict", b"x", 404, "no graph `zoo predict` can use"),
    ("/v1/models/cnn/sample", b"{}", 404, "no sampler or decoder"),
    ("/v1/completions", b"[1]", 400, "JSON object"),
    ("/v1/completions", b'{"model": "lm", "prompt": ""}', 422, "prompt"),
    ("/v1/completions", b'{"model": "lm", "prompt": ["a", ""]}', 422, "prompt"),
    ("/v1/completions", b'{"model": "lm", "prompt": [[1, 2]]}', 422, "token-id"),
    ("/v1/completions", b'{"model": "lm", "prompt": ["a", "' + b"x " * 400 + b'"]}', 422, "prompt 1 is"),
    ("/v1/completions", b'{"model": "lm", "prompt": "a", "max_tokens": -1}', 422, "max_tokens"),
    ("/v1/completions", b'{"model": "lm", "prompt": "a", "temperature": "hot"}', 422, "temperature"),
    ("/v1/completions", b'{"model": "lm", "prompt": "a", "stop": [1]}', 422, "stop"),
    ("/v1/completions", b'{"model": "cnn", "prompt": "a"}', 404, "not a language model"),
    ("/v1/completions", b'{"model": "lm", "prompt": "' + b"x " * 400 + b'"}', 422, "context"),
    ("/v2/nothing", b"", 404, "no route"),
]


@pytest.mark.parametrize(("path", "body", "status", "words"), BAD, ids=[f"{p}:{w}" for p, _, _, w in BAD])
def test_malformed_requests_get_4xx_with_a_message(server: ThreadServer, path: str, body: bytes, status: int,
                                                   words: str) -> None:
    reply = httpx.post(f"{server.url}{path}", content=body, timeout=30)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    message = error["message"] if isinstance(error, dict) else error
    assert words in message, message


def test_size_and_time_limits(cnn_bundle: Path) -> None:
    options = ServeOptions(bundles={"cnn": str(cnn_bundle)}, max_body_mb=0.01, timeout_s=1.0, max_delay_ms=3000)
    with ThreadServer(options) as running:
        big = httpx.post(f"{running.url}/v2/models/cnn/infer", content=b"x" * 20_000, timeout=10)
        assert big.status_code == 413 and "max-body-mb" in big.json()["error"]
        # a chunked body (no Content-Length) is counted as it arrives
        chunks = (b"x" * 4096 for _ in range(5))
        assert httpx.post(f"{running.url}/v2/models/cnn/infer", content=chunks, timeout=10).status_code == 413
        # a body that stops arriving: 408 after --timeout-s
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
            raw.sendall(b"POST /v2/models/cnn/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            assert b" 408 " in raw.recv(4096).split(b"\r\n")[0]
        # the answer takes longer than --timeout-s (the batch waits 3 s for company): 504, and its slot is dropped
        slow = infer_json(running.url, "cnn", digits_batch(1))
        assert slow.status_code == 504 and "timeout-s" in slow.json()["error"]


def test_disconnected_stream_stops_generating(cnn_bundle: Path, lm_bundle: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_lm.generate import LMSession

    step = LMSession.step

    def slow_step(self, ids, cache, mask=None):  # a slow model: 50 ms a token
        time.sleep(0.05)
        return step(self, ids, cache, mask)

    monkeypatch.setattr(LMSession, "step", slow_step)
    with ThreadServer(ServeOptions(bundles={"lm": str(lm_bundle)})) as running:
        body = {"model": "lm", "prompt": "The ", "max_tokens": 100, "temperature": 0, "stream": True}
        before = metric(running.url, "zoo_serve_generated_tokens_total", model="lm")  # counters are per process
        with httpx.stream("POST", f"{running.url}/v1/completions", json=body, timeout=30) as reply:
            next(reply.iter_lines())  # the first event has arrived; now the client goes away
        deadline = time.monotonic() + 10
        while metric(running.url, "zoo_serve_lm_active_sequences", model="lm") > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(running.url, "zoo_serve_lm_active_sequences", model="lm") == 0
        made = metric(running.url, "zoo_serve_generated_tokens_total", model="lm")
        time.sleep(0.3)
        assert metric(running.url, "zoo_serve_generated_tokens_total", model="lm") == made < before + 50
        # the slot is free again: the next request is answered at once
        after = httpx.post(f"{running.url}/v1/completions", json={**body, "stream": False, "max_tokens": 2},
                           timeout=30)
        assert after.status_code == 200 and after.json()["usage"]["completion_tokens"] == 2


# --- a real process tree ---------------------------------------------------------------------------------------------


def test_overload_gets_503_with_retry_after_and_memory_stays_flat(cnn_bundle: Path, tmp_path: Path) -> None:
    """Far more concurrent requests than the queue holds: only 200 or 503+Retry-After, each answered once."""
    args = [f"cnn={cnn_bundle}", "--max-queue", "4", "--max-delay-ms", "20", "--max-batch", "4"]
    with ProcessServer(args, tmp_path) as running, ThreadPoolExecutor(32) as pool:
        worker = running.workers()[0]

        def burst() -> list[httpx.Response]:
            return list(pool.map(lambda i: infer_json(running.url, "cnn", digits_batch(1, i)), range(96)))

        statuses = [r.status_code for r in burst()]  # the first burst warms the allocator up
        rss = [_rss(worker)]
        for _ in range(4):
            replies = burst()
            statuses += [r.status_code for r in replies]
            assert all(r.headers.get("retry-after") == "1" for r in replies if r.status_code == 503)
            rss.append(_rss(worker))
        assert set(statuses) <= {200, 503} and statuses.count(200) > 0 and statuses.count(503) > 0
        assert len(statuses) == 5 * 96
        assert max(rss) - rss[0] < 30 * 2**20, rss  # no growth with load beyond a little allocator noise
        assert metric(running.url, "zoo_serve_rejected_total") == statuses.count(503)
    lines = [json.loads(line) for line in running.log.read_text().splitlines() if line.startswith("{")]
    infers = [line for line in lines if line["route"] == "infer"]
    assert len(infers) == 5 * 96 and {"status", "ms", "model", "worker", "path"} <= set(infers[0])


def test_sigterm_finishes_in_flight_requests_and_exits_0(cnn_bundle: Path, tmp_path: Path) -> None:
    running = ProcessServer([f"cnn={cnn_bundle}", "--max-delay-ms", "1500", "--max-batch", "64"], tmp_path)
    with ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(infer_json, running.url, "cnn", digits_batch(1, i)) for i in range(4)]
        time.sleep(0.5)  # the four are waiting in the batcher
        running.proc.send_signal(signal.SIGTERM)
        replies = [p.result() for p in pending]
    assert [r.status_code for r in replies] == [200] * 4
    assert running.proc.wait(30) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/v2/health/live", timeout=2)
    running.stop()


def test_killed_worker_is_replaced_and_answers_resume(cnn_bundle: Path, tmp_path: Path) -> None:
    with ProcessServer([f"cnn={cnn_bundle}", "--workers", "2"], tmp_path) as running:
        before = running.workers()
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)
        deadline, answered = time.monotonic() + 30, 0
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                answered += infer_json(running.url, "cnn", digits_batch(1)).status_code == 200
            now = running.workers()
            if answered >= 5 and len(now) == 2 and before[0] not in now:
                break
            time.sleep(0.1)
        assert answered >= 5 and len(running.workers()) == 2 and before[0] not in running.workers()
        wait_all = [infer_json(running.url, "cnn", digits_batch(1)).status_code for _ in range(10)]
        assert wait_all == [200] * 10


def test_reload_swaps_a_reexported_bundle(cnn_bundle: Path, tmp_path: Path) -> None:
    from zoo.bundles import export_run

    live = tmp_path / "live"
    shutil.copytree(cnn_bundle, live)
    other = zoo.train("cnn", epochs=1, seed=7, out=tmp_path / "runs", progress=False)
    fresh = Path(export_run(other.run_dir, out=tmp_path / "exports", providers=["cpu"]).bundle_dir)
    feed = digits_batch(2)
    old, new = ort_outputs(cnn_bundle, feed), ort_outputs(fresh, feed)
    assert not np.allclose(next(iter(old.values())), next(iter(new.values())))
    with ProcessServer([f"cnn={live}", "--reload", "--max-delay-ms", "1500"], tmp_path) as running:
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(infer_json, running.url, "cnn", feed)
            time.sleep(0.4)
            shutil.copytree(fresh, tmp_path / "staged")
            os.rename(live, tmp_path / "retired")
            os.rename(tmp_path / "staged", live)
            first = in_flight.result()
        assert first.status_code == 200
        got = np.asarray(first.json()["outputs"][0]["data"], np.float32).reshape(feed.shape[0], -1)
        np.testing.assert_allclose(got, next(iter(old.values())), rtol=1e-5, atol=1e-6)  # on the old bundle
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reply = infer_json(running.url, "cnn", feed)
            got = np.asarray(reply.json()["outputs"][0]["data"], np.float32).reshape(feed.shape[0], -1)
            if np.allclose(got, next(iter(new.values())), rtol=1e-5, atol=1e-6):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the re-exported bundle was not picked up within 30 s")


def test_bad_bundles_and_options_are_one_line(tmp_path: Path, cnn_bundle: Path) -> None:
    runner = CliRunner()
    assert_one_line_error(runner.invoke(cli, ["serve", str(tmp_path / "none")]), "does not exist")
    assert_one_line_error(runner.invoke(cli, ["serve", f"a.b={cnn_bundle}"]), "letters, digits")
    assert_one_line_error(runner.invoke(cli, ["serve", f"x={cnn_bundle}", f"x={cnn_bundle}"]), "two bundles")
    assert_one_line_error(runner.invoke(cli, ["serve", str(cnn_bundle), "--workers", "0"]), "--workers")
    broken = tmp_path / "broken"
    shutil.copytree(cnn_bundle, broken)
    (broken / "model" / "model.onnx").write_bytes(b"garbage")
    assert_one_line_error(runner.invoke(cli, ["serve", str(broken)]), "does not match its manifest hash")


def test_deploy_target_serve_writes_a_folder_that_serves_the_bundle(cnn_bundle: Path, tmp_path: Path) -> None:
    """zoo deploy --target serve: the bundle copied whole, run.sh serving it (PORT from the environment, SIGTERM
    exits 0), a systemd unit naming the folder; an existing folder is kept without --force."""
    import subprocess

    from zoo.bundles import Bundle

    from .serve_harness import wait_ready

    folder = tmp_path / "cnn-serve"
    result = CliRunner().invoke(cli, ["deploy", str(cnn_bundle), "--target", "serve", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    assert Bundle.open(folder / "bundle").manifest.model == "cnn"  # every file there, hashes checked
    unit = (folder / "zoo-serve-cnn.service").read_text()
    assert f"ExecStart=/bin/sh {folder.resolve() / 'run.sh'} --reload" in unit and "KillSignal=SIGTERM" in unit
    assert json.loads((folder / "deploy.json").read_text())["target"] == "serve"
    assert_one_line_error(CliRunner().invoke(cli, ["deploy", str(cnn_bundle), "--target", "serve", "--out",
                                                   str(folder)]), "exists")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(["sh", str(folder / "run.sh"), "--max-delay-ms", "1"], env={**os.environ,
                            "PORT": str(port)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc=proc)
        feed = digits_batch(2)
        reply = infer_json(url, "cnn", feed)
        assert reply.status_code == 200, reply.text
        got = np.asarray(reply.json()["outputs"][0]["data"], np.float32).reshape(2, -1)
        np.testing.assert_allclose(got, next(iter(ort_outputs(cnn_bundle, feed).values())), rtol=1e-5, atol=1e-6)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")
