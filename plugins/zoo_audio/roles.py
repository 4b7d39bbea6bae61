"""The ``keyword-spotter`` graph role: a waveform (batch × samples at ``sample_rate``) → class logits, the log-mel
front end inside. ``zoo predict`` reads WAV files (:mod:`zoo_audio.wav`), ``zoo deploy`` ships the graph with a
softmax and programs that decode WAV files the same way (``templates/wav.js`` for node and the browser, scipy for
python), and the int8/fp16 gate is the classifier's (top-1 agreement, accuracy drop)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from zoo.role_handlers import (
    DeployPlan,
    DeployRequest,
    DeployVectors,
    GateEvidence,
    GateResult,
    PredictRequest,
    PredictRow,
    RoleHandlers,
    class_rows,
    handlers_for,
)

PROGRAMS = {"python": ["run.py"], "node": ["run.js", "wav.js"], "web": ["index.html", "main.js", "wav.js"]}
NPM_PACKAGES = {"node": {"onnxruntime-node": "^1.20.0"}, "web": {"onnxruntime-web": "^1.20.0"}}
PIP_PACKAGES = ("onnxruntime>=1.20", "numpy", "scipy>=1.10")
#: Real validation clips stored as the deployment's test vectors.
VECTOR_CLIPS = 8


class KeywordSpotterHandlers(RoleHandlers):
    """WAV files in, class and probabilities out."""

    def predict(self, request: PredictRequest) -> list[PredictRow]:
        from zoo_audio.predict import clips

        info = request.graph.role_info
        logits = request.session().run([info["output"]], {info["input"]: clips(list(request.inputs), info)})[0]
        return class_rows(request.inputs, logits, list(info["class_names"]), request.top, key="file")

    def deploy(self, request: DeployRequest) -> DeployPlan:
        """The graph with a softmax (outputs ``logits`` and ``probabilities``), programs that read WAV files."""
        from zoo.bundles.vectors import read_test_set
        from zoo.ort import CPU, session

        graph, info = request.graph, request.graph.role_info
        add_softmax(request.bundle.graph_path(graph), request.folder / "model.onnx", info["output"])
        real = next(s for s in graph.test_sets if "real" in s.inputs)
        (waves, *_), _ = read_test_set(request.bundle.path / real.dir)
        waves = np.ascontiguousarray(waves[:VECTOR_CLIPS], dtype=np.float32)
        probabilities = session(str(request.folder / "model.onnx"), CPU).run(["probabilities"],
                                                                              {info["input"]: waves})[0]
        manifest = request.bundle.manifest
        deployed = {"model": manifest.model, "family": manifest.family, "graph": graph.name, "kind": "keyword-spotter",
                    "role": graph.role, "input": info["input"], "output": "probabilities",
                    "class_labels": list(info["class_names"]), "sample_rate": int(info["sample_rate"]),
                    "samples": int(info["samples"]),
                    "decoding": "PCM WAV (8/16/24/32-bit integer, 32/64-bit float), channels averaged, resampled "
                                "with scipy.signal.resample_poly's Kaiser (beta 5) polyphase filter, first "
                                "`samples` kept or zeros appended"}
        vectors = DeployVectors({info["input"]: waves}, {"probabilities": probabilities}, {"probabilities": 1e-5})
        here = resources.files("zoo_audio") / "templates"
        return DeployPlan(deployed, {name: (here / name).read_text() for name in PROGRAMS[request.target]},
                          readme(request.target, deployed), vectors, NPM_PACKAGES.get(request.target, {}),
                          PIP_PACKAGES)

    def gate(self, evidence: GateEvidence) -> GateResult:
        """The classifier's rule: top-1 agreement and at most one point of accuracy lost on labelled clips."""
        return handlers_for("classifier").gate(evidence)


def add_softmax(src: Any, dst: Any, logits: str) -> None:
    """``src`` with a ``probabilities`` output (softmax over the classes of ``logits``) written to ``dst``."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(src))
    model.graph.node.append(helper.make_node("Softmax", [logits], ["probabilities"], axis=1, name="probabilities"))
    model.graph.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", None]))
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def readme(target: str, info: dict[str, Any]) -> str:
    run = {"python": ("pip install -r requirements.txt", "python run.py clip.wav [more.wav ...]",
                      "python run.py --check"),
           "node": ("ONNXRUNTIME_NODE_INSTALL=skip npm install   # the CPU build ships in the package",
                    "node run.js clip.wav [more.wav ...]", "node run.js --check"),
           "web": ("npm install   # onnxruntime-web's files, served from node_modules (no CDN)",
                   "python -m http.server 8000   # then open http://127.0.0.1:8000/ and choose a WAV file",
                   "open http://127.0.0.1:8000/?check=1")}[target]
    return f"""# {info['model']} (keyword spotter) for {target}

`model.onnx` takes `{info['input']}`: float32 waveforms, batch × {info['samples']} samples at
{info['sample_rate']} Hz in [-1, 1], and computes its log-mel spectrogram itself; it returns `logits` and
`probabilities` over {', '.join(info['class_labels'])}.

The program reads WAV files as zoo does: {info['decoding']}. Python uses scipy for that; node and the web page
use `wav.js`, which computes the same samples (tested against scipy on 8 to 44.1 kHz, 8- to 32-bit, stereo).

```
{run[0]}
{run[1]}
{run[2]}   # the clips in vectors/ must give the stored probabilities
```
"""
