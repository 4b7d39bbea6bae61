"""Built-in plugin: keyword spotting on speech (the ``audio`` family), the embedded ``spoken-digits`` data set
(synthesised with espeak-ng) and ``wav:DIR`` folders in the Speech Commands layout.

Nothing here imports torch: the models, the family and the loaders are lazy ``"module:attr"`` references.
See docs/audio.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl
from zoo.roles import RoleSpec
from zoo.specs import DatasetSpec, FamilySpec, InputSpec, ModelSpec

#: What an exported keyword spotter is: ``zoo predict`` reads WAV files for it, ``zoo deploy`` ships WAV readers.
KEYWORD_SPOTTER = RoleSpec(
    name="keyword-spotter", summary="waveform (batch × samples at sample_rate, in [-1, 1]) → class logits",
    required=("input", "output", "class_names", "sample_rate", "samples"), input_keys=("input",),
    output_keys=("output",), handlers="zoo_audio.roles:KeywordSpotterHandlers")

#: One second at 16 kHz: what every model takes by default (the data sets are brought to it).
_INPUT = InputSpec(1, 1, 16000)
_TRAINING = {"epochs": 15, "batch_size": 64, "lr": 3e-3, "optimizer": "adamw"}


@hookimpl
def register_families(register: Callable[[Any], None]) -> None:
    register(FamilySpec(
        name="audio",
        summary="Keyword spotters on waveforms (cross-entropy, augmented); exported as waveform → logits with "
                "the log-mel front end inside the graph",
        factory="zoo_audio.family:AudioFamily",
        data_kinds=("audio",),
        target_kinds=("class",),
    ))


@hookimpl
def register_models(register: Callable[[Any], None]) -> None:
    common = {"num_classes": 10, "samples": 16000, "sample_rate": 16000}
    register(ModelSpec(
        name="m5", family="audio", dataset="spoken-digits", input=_INPUT, builder="zoo_audio.models:M5",
        summary="Raw-waveform 1-D CNN (M5: 80-tap strided conv, 3 conv/pool blocks, global pooling)",
        defaults=dict(_TRAINING), model_args={**common, "width": 32},
    ))
    register(ModelSpec(
        name="kws-res", family="audio", dataset="spoken-digits", input=_INPUT, builder="zoo_audio.models:KWSResNet",
        summary="Log-mel keyword spotter: 40 mel bands in the graph, a small ResNet, SpecAugment in training",
        defaults=dict(_TRAINING), model_args={**common, "n_mels": 40, "width": 16, "dropout": 0.1},
    ))
    register(ModelSpec(
        name="crnn", family="audio", dataset="spoken-digits", input=_INPUT, builder="zoo_audio.models:CRNN",
        summary="Convolutional-recurrent keyword spotter: log-mel, two conv blocks, a GRU over time",
        defaults=dict(_TRAINING), model_args={**common, "n_mels": 40, "width": 16, "hidden": 64},
    ))


@hookimpl
def register_roles(register: Callable[[Any], None]) -> None:
    register(KEYWORD_SPOTTER)


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    register(DatasetSpec(
        name="spoken-digits", loader="zoo_audio.data:load_spoken_digits", input=_INPUT, num_classes=10,
        summary="The ten digits spoken by espeak-ng (36 voices x 8 accents x 2 takes, 5,760 one-second clips at "
                "16 kHz, synthesised on first use, no download); validation voices held out",
        size=5760,
    ))
    register(DatasetSpec(
        name="wav", loader="zoo_audio.data:load_wav_folder", needs_path=True, input=_INPUT,
        summary="Your recordings: wav:DIR with DIR/<word>/<clip>.wav (the Speech Commands layout), any PCM WAV, "
                "resampled to 16 kHz mono, one second",
    ))
