"""What ``zoo explain`` explains: a trained model opened from a run folder or from a bundle whose run is here,
with the preprocessing the deployed graph records (a bundle's graph metadata; a run's own data description,
which is what its export writes), so an explanation is about the input the deployed graph sees."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.digest import file_sha256
from zoo.errors import ZooError

#: An input naming a validation sample of the run's own data instead of a file: ``val:INDEX``.
VALIDATION_PREFIX = "val:"


@dataclass
class Subject:
    """A trained model ready to explain: ``model`` is the classifier graph's module (eval mode, CPU) or, for text,
    the model the family's :class:`zoo.explain.types.TokenModel` reads; ``meta`` the preprocessing
    (``input_shape`` and ``normalization`` as JSON strings, as in a graph's metadata)."""

    name: str
    run: Any
    model: Any
    meta: dict[str, str] = field(default_factory=dict)
    token_model: Any = None
    space: Any = None

    @property
    def family(self) -> Any:
        """The run's family (its hooks name the Grad-CAM layer, the attention maps, the tokenizer)."""
        return self.run.family

    @property
    def data_info(self) -> Any:
        """The run's data description."""
        return self.run.data_info

    @property
    def kind(self) -> str:
        """``"text"`` for models the family gives a token model for, the input space's kind (``"audio"``) for
        those it describes with an :class:`zoo.explain.types.InputSpace`, else ``"image"``."""
        if self.token_model is not None:
            return "text"
        return self.space.kind if self.space is not None else "image"

    @property
    def class_names(self) -> list[str]:
        """The classes, in output order."""
        return list(self.data_info.class_names)

    def baseline(self) -> np.ndarray:
        """A black image in model-input units (1×C×H×W): where Integrated Gradients starts, what occlusion paints."""
        norm = json.loads(self.meta["normalization"])
        return black_image(norm["mean"], norm["std"], json.loads(self.meta["input_shape"])[1:])

    def images(self, inputs: list[str]) -> np.ndarray:
        """The model's N×C×H×W input for image files (preprocessed as ``zoo predict`` does) or ``val:INDEX``."""
        from zoo.predict import preprocess

        return self._read(inputs, lambda item: ([item], preprocess(Path(item), self.meta)))[1]

    def samples(self, inputs: list[str]) -> tuple[list[str], np.ndarray]:
        """For an input space: the names and the raw model inputs of files (read by the family, as ``zoo predict``
        reads them; a file may hold several samples, such as CSV rows) or ``val:INDEX``."""
        return self._read(inputs, self.space.read)

    def _read(self, inputs: list[str], read_file: Any) -> tuple[list[str], np.ndarray]:
        """Names and N×… model inputs: ``val:INDEX`` from the run's validation split, files through ``read_file``
        (a path → its sample names and their inputs)."""
        names: list[str] = []
        arrays = []
        validation = None
        for item in inputs:
            if item.startswith(VALIDATION_PREFIX):
                if validation is None:
                    from zoo.data import load_run_data

                    validation = load_run_data(self.run.config).x_val
                found, array = [item], np.asarray(validation[_index(item, len(validation))], np.float32)[None]
            else:
                found, array = read_file(item)
            names += list(found)
            arrays.append(np.asarray(array, np.float32))
        return names, np.concatenate(arrays).astype(np.float32)


def black_image(mean: Any, std: Any, shape: Any) -> np.ndarray:
    """A black image (raw pixels 0) in model-input units, ``(0 - mean) / std`` per channel: 1×C×H×W."""
    channels, height, width = (int(v) for v in shape)
    value = -np.asarray(mean, np.float32) / np.asarray(std, np.float32)
    return np.broadcast_to(value[None, :, None, None], (1, channels, height, width)).astype(np.float32)


def _index(item: str, count: int) -> int:
    raw = item[len(VALIDATION_PREFIX):]
    if not raw.isdigit() or int(raw) >= count:
        raise ZooError(f"{item!r}: name a validation sample as val:INDEX with INDEX from 0 to {count - 1}")
    return int(raw)


def open_subject(target: str | Path, run_dir: str | Path | None = None) -> Subject:
    """The model of a run folder, or of a bundle (its run found through the manifest, or ``run_dir``)."""
    target = Path(target)
    if (target / "manifest.json").is_file():
        return _from_bundle(target, run_dir)
    if run_dir is not None:
        raise ZooError("--run is for bundles; name the run folder itself instead")
    from zoo.runs import load_run

    run = load_run(target)
    return _subject(run, run.run_dir.name, None)


def _from_bundle(path: Path, run_dir: str | Path | None) -> Subject:
    from zoo.bundles.manifest import Bundle
    from zoo.run_layout import WEIGHTS
    from zoo.runs import load_run

    bundle = Bundle.open(path)
    manifest = bundle.manifest
    run_path = Path(run_dir) if run_dir else Path(manifest.run.get("dir", ""))
    if not (run_path / WEIGHTS).is_file():
        raise ZooError(f"the run {path} was exported from ({run_path}) is not here, and zoo explain needs its PyTorch "
                       "model; pass --run RUN_DIR")
    run = load_run(run_path)
    if file_sha256(run.run_dir / WEIGHTS) != manifest.run.get("weights_sha256"):
        raise ZooError(f"the weights in {run.run_dir} are not the ones {path} was exported from; pass the right --run")
    from zoo.roles import GraphRole

    graphs = manifest.with_role(GraphRole.CLASSIFIER)
    return _subject(run, path.name, dict(graphs[0].metadata) if graphs else None)


def _subject(run: Any, name: str, meta: dict[str, str] | None) -> Subject:
    """The subject of a run's model; ``meta``: the bundle's image preprocessing (``None``: the run's own)."""
    from zoo.roles import GraphRole

    run.model.cpu().eval()
    token_model = run.family.token_model(run.model, run.data_info)
    if token_model is not None:
        return Subject(name, run, run.model, meta or {}, token_model)
    space = run.family.input_space(run.model, run.data_info)
    if space is not None:
        return Subject(name, run, run.model, meta or {}, space=space)
    for graph in run.family.graphs(run.model, run.data_info):
        if graph.role == GraphRole.CLASSIFIER and len(graph.input_names) == 1:
            return Subject(name, run, graph.module.cpu().eval(), meta or _run_meta(run.data_info))
    raise ZooError(f"zoo explain explains image classifiers, language models and models whose family describes "
                   f"their inputs; {run.spec.name} (family {run.spec.family!r}) exports no classifier graph and its "
                   "family gives neither a token model nor an input space")


def _run_meta(info: Any) -> dict[str, str]:
    """The preprocessing metadata an export of this run writes (the part ``zoo predict`` reads)."""
    from zoo.data.units import unit_metadata, white_value

    unit = unit_metadata(white_value(info.pixel_max, info.scale))
    meta = {"input_shape": json.dumps(["batch", *info.shape]),
            "normalization": json.dumps({"scale": info.scale, "mean": info.mean, "std": info.std,
                                         "pixel_max": unit["pixel_max"], "from_8bit": unit["from_8bit"]})}
    if getattr(info, "crop", None) is not None:  # the evaluation transform, as the export records it
        meta["preprocessing"] = json.dumps({"crop": info.crop.to_dict()})
    return meta


