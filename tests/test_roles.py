"""Graph roles (declared, validated, stamped) and the typed bundle (``Bundle.open``) that predict/sample/verify read."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from zoo.bundles.manifest import Bundle, GraphEntry, Manifest, ParityReport, parse_manifest
from zoo.cli import cli
from zoo.digest import file_sha256 as sha256
from zoo.errors import ZooError
from zoo.family import (
    GraphRole,
    GraphSpec,
    RoleSpec,
    classifier_info,
    decoder_info,
    encoder_info,
    known_roles,
    register_role,
    role_spec,
    sampler_info,
)


def _spec(**kwargs: Any) -> GraphSpec:
    base: dict[str, Any] = {"name": "g", "module": None, "input_names": ["noise"], "output_names": ["image"],
                            "random_inputs": lambda b, rng: (np.zeros((b, 2), np.float32),)}
    return GraphSpec(**{**base, **kwargs})


def test_built_in_roles_and_their_info() -> None:
    assert {"classifier", "sampler", "encoder", "decoder"} <= set(known_roles())
    spec = _spec(role=GraphRole.SAMPLER, role_info=sampler_info(latent_input="noise", latent_dim=2))
    assert spec.role_info["distribution"] == "standard_normal" and spec.role_info["pixel_space"] == "model_input"
    assert classifier_info(output="logits", class_names=["a", "b"])["num_classes"] == 2
    assert encoder_info(image_input="x", latent_output="z", latent_dim=3)["latent_dim"] == 3
    assert decoder_info(latent_input="z", latent_dim=3, distribution="uniform")["distribution"] == "uniform"
    assert role_spec("decoder").required == role_spec("sampler").required


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"role": "critic"}, "unknown graph role 'critic'"),
    ({"role": GraphRole.SAMPLER}, "lacks role_info ['latent_input', 'latent_dim', 'distribution', 'output']"),
    ({"role": GraphRole.SAMPLER, "role_info": sampler_info(latent_input="z", latent_dim=2)},
     "role_info latent_input='z' is not one of its inputs ['noise']"),
    ({"role": GraphRole.CLASSIFIER, "role_info": classifier_info(output="logits", class_names=["a"])},
     "role_info output='logits' is not one of its outputs ['image']"),
    ({"role_info": {"x": 1}}, "has role_info but no role"),
])
def test_a_wrong_role_declaration_is_one_line(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ZooError, match=r"^[^\n]*$") as caught:
        _spec(**kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: sampler_info(latent_input="z", latent_dim=0), "latent_dim must be a positive whole number"),
    (lambda: sampler_info(latent_input="z", latent_dim=2, distribution="cauchy"), "'cauchy' is not known"),
    (lambda: sampler_info(latent_input="z", latent_dim=2, label_input="y"), "needs num_classes"),
    (lambda: classifier_info(output="y", class_names=[]), "needs the class names"),
])
def test_role_info_helpers_check_their_arguments(call: Any, message: str) -> None:
    with pytest.raises(ZooError, match=message):
        call()


def test_roles_are_an_open_registry() -> None:
    tagger = RoleSpec("tagger", "tokens → one tag per token", ("tokens_input", "logits_output", "vocab_size"),
                      input_keys=("tokens_input",), output_keys=("logits_output",))
    registered = register_role(tagger)
    assert registered.plugin == "tests", "a direct registration is filed under the calling package"
    assert register_role(tagger) == registered, "the same spec again is allowed"
    assert "tagger" in known_roles() and registered.qualified == "tests:tagger"
    spec = _spec(input_names=["tokens"], output_names=["logits"], role="tagger",
                 role_info={"tokens_input": "tokens", "logits_output": "logits", "vocab_size": 50})
    assert spec.role == "tagger"
    with pytest.raises(ZooError, match="already registered by plugin 'tests' with other requirements"):
        register_role(RoleSpec("tagger", "something else"))
    with pytest.raises(ZooError, match="is invalid"):
        register_role(RoleSpec("Bad Role", ""))


# --- bundles: roles stamped, Bundle.open's checks, predict/sample by role ---------------------------------------


@pytest.fixture(scope="module")
def cnn_bundle(export_briefly) -> Path:
    return export_briefly("cnn").bundle_dir


def test_roles_are_stamped_into_the_graph_and_the_manifest(cnn_bundle: Path) -> None:
    bundle = Bundle.open(cnn_bundle)
    assert isinstance(bundle.manifest, Manifest)
    graph = bundle.manifest.graphs["model"]
    assert isinstance(graph, GraphEntry) and graph.role == "classifier"
    assert graph.role_info["output"] == "logits" and graph.role_info["num_classes"] == 10
    raw = json.loads((cnn_bundle / "manifest.json").read_text())["graphs"]["model"]
    assert raw["zoo_role"] == "classifier" and raw["metadata"]["zoo_role"] == "classifier"
    assert bundle.manifest.with_role(GraphRole.CLASSIFIER) == [graph]
    parity = bundle.parity()
    assert isinstance(parity, ParityReport) and parity.passed
    assert parity.result("model", "CPUExecutionProvider")["passed"]


def _rewrite(bundle: Path, change: Any) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _outside(m: dict) -> None:
    m["graphs"]["model"]["file"] = "../elsewhere/model.onnx"


def _unlisted_test_set(m: dict) -> None:
    m["graphs"]["model"]["test_sets"][0]["dir"] = "model/test_data_set_99"


def _unlisted_file(m: dict) -> None:
    del m["files"]["model/model.onnx"]


def _listed_outside(m: dict) -> None:
    m["files"]["../../etc/passwd"] = "0" * 64


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.clear() or m.update({"format": 2}), "lists no files"),
    (lambda m: m["graphs"]["model"].pop("file"), "lacks 'file'"),
    (lambda m: m["graphs"]["model"].update(inputs=7), "is malformed"),
    (lambda m: m["graphs"].update(model=[]), "is not an object"),
    (lambda m: m.update(model=3), "'model' must be a string"),
    (lambda m: m.update(format=1), "format 1"),
    (_outside, "points outside the bundle"),
    (_unlisted_test_set, "has no files listed"),
    (_unlisted_file, "does not list with a hash"),
    (_listed_outside, "points outside the bundle"),
])
def test_malformed_manifests_are_one_line_errors(cnn_bundle: Path, tmp_path: Path, change: Any, message: str) -> None:
    bundle = Path(shutil.copytree(cnn_bundle, tmp_path / "b"))
    _rewrite(bundle, change)
    with pytest.raises(ZooError, match=r"^[^\n]*$") as caught:
        Bundle.open(bundle)
    assert message in str(caught.value)
    for command in (["verify", str(bundle), "--bundle-only"], ["predict", str(bundle), "x.png"]):
        out = CliRunner().invoke(cli, command)
        assert out.exit_code == 2 and message in out.output and len(out.output.strip().splitlines()) == 1


@pytest.mark.parametrize("document", ["[]", "3", '"x"', "{"])
def test_a_manifest_that_is_not_an_object_is_refused(cnn_bundle: Path, tmp_path: Path, document: str) -> None:
    bundle = Path(shutil.copytree(cnn_bundle, tmp_path / "b"))
    (bundle / "manifest.json").write_text(document)
    with pytest.raises(ZooError, match=r"not a manifest|corrupted"):
        Bundle.open(bundle)
    with pytest.raises(ZooError, match="not a manifest"):
        parse_manifest([])


def test_a_bundle_without_roles_is_refused_by_predict_and_sample(cnn_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(cnn_bundle, tmp_path / "b"))

    def drop_role(m: dict) -> None:
        for key in ("zoo_role", "zoo_role_info"):
            m["graphs"]["model"]["metadata"].pop(key)

    _rewrite(bundle, drop_role)
    (tmp_path / "x.png").write_bytes(b"")
    predicted = CliRunner().invoke(cli, ["predict", str(bundle), str(tmp_path / "x.png")])
    assert predicted.exit_code == 2 and "holds no graph `zoo predict` can use" in predicted.output
    assert "graph roles: none" in predicted.output
    sampled = CliRunner().invoke(cli, ["sample", str(bundle), "--out", str(tmp_path / "s.png")])
    assert sampled.exit_code == 2 and "holds no sampler or decoder graph" in sampled.output


def test_a_bundle_from_before_roles_is_still_sampled_from_its_fp32_generator(export_briefly, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(export_briefly("gan").bundle_dir, tmp_path / "b"))

    def as_before_roles(m: dict) -> None:  # only the old zoo_sampler key says which graph draws images
        for graph in m["graphs"].values():
            graph.pop("role", None)
            for key in ("zoo_role", "zoo_role_info"):
                graph["metadata"].pop(key, None)

    _rewrite(bundle, as_before_roles)
    from zoo.sampling import sampler_graph

    graph = sampler_graph(Bundle.open(bundle))
    assert graph.name == "generator" and graph.role == GraphRole.SAMPLER
    assert graph.role_info["latent_input"] == "noise" and graph.role_info["distribution"] == "standard_normal"
    sampled = CliRunner().invoke(cli, ["sample", str(bundle), "--out", str(tmp_path / "s.png")])
    assert sampled.exit_code == 0, sampled.output
    assert (tmp_path / "s.png").stat().st_size > 0


def test_a_file_hash_mismatch_is_caught_before_anything_runs(cnn_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(cnn_bundle, tmp_path / "b"))
    card = bundle / "card.md"
    card.write_text(card.read_text() + "tampered")
    with pytest.raises(ZooError, match=r"card\.md does not match its manifest hash"):
        Bundle.open(bundle)
    _rewrite(bundle, lambda m: m["files"].update({"card.md": sha256(card)}))
    Bundle.open(bundle)


@pytest.mark.parametrize(("role", "info", "feeds", "outputs", "message"), [
    ("classifier", classifier_info(output="logits", class_names=list("abc")), {}, {"logits": np.zeros((2, 5))},
     "output 'logits' has 5 class scores but the data has 3 classes"),
    ("sampler", sampler_info(latent_input="noise", latent_dim=4), {"noise": np.zeros((2, 6))}, {},
     "'noise' has 6 values per sample, not latent_dim=4"),
    ("encoder", encoder_info(image_input="x", latent_output="z", latent_dim=2), {}, {"z": np.zeros((2, 3))},
     "'z' has 3 values per sample, not latent_dim=2"),
])
def test_export_refuses_a_graph_whose_outputs_break_its_role(role: str, info: dict, feeds: dict, outputs: dict,
                                                             message: str) -> None:
    from zoo.roles import check_role_shapes

    with pytest.raises(ZooError, match=re.escape(message)):
        check_role_shapes("g", role, info, feeds, outputs)
    check_role_shapes("g", None, {}, feeds, outputs)


def test_export_stops_before_writing_when_a_classifier_is_wider_than_its_classes(
        train_briefly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_cnn.family import ClassifierFamily

    from zoo.bundles import export_run

    real = ClassifierFamily.graphs

    def wider(self: Any, model: Any, data: Any) -> list[GraphSpec]:
        graphs = real(self, model, data)
        graphs[0].role_info["num_classes"] = data.num_classes + 2
        return graphs

    monkeypatch.setattr(ClassifierFamily, "graphs", wider)
    with pytest.raises(ZooError, match="has 10 class scores but the data has 12 classes"):
        export_run(train_briefly("cnn").run_dir, out=tmp_path, providers=["cpu"])
    assert not any(tmp_path.iterdir()), "nothing is left behind"
