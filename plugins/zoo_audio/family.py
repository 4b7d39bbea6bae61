"""The ``audio`` family: keyword spotters trained with cross-entropy on waveforms; exported as waveform → logits
with the log-mel front end inside the graph (role ``classifier``, ``input_kind`` ``"audio"``)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data import DataInfo
from zoo.family import Family, GraphSpec, InputSpace, ReportContext, ReportSection, RunContext
from zoo.specs import ModelSpec
from zoo.toolkit.graphs import data_graph
from zoo_audio.augment import AudioAugment, augment_waveforms, generator, spec_masks


def audio_facts(model: torch.nn.Module) -> dict[str, Any]:
    """What a program must do to a WAV file before the graph: the rate and length the graph takes."""
    facts: dict[str, Any] = {"sample_rate": int(model.sample_rate), "samples": int(model.samples),
                             "layout": "batch x samples, float32 mono in [-1, 1]",
                             "length": "first `samples` kept, zeros appended"}
    logmel = getattr(model, "logmel", None)
    if logmel is not None:
        facts["front_end"] = {"log_mel": logmel.cfg.to_dict(), "formula": "log(librosa mel power + eps)"}
    return facts


def batches(x: np.ndarray, y: np.ndarray, size: int, device: Any):
    """Validation batches as tensors on ``device``, in order."""
    for start in range(0, len(x), size):
        yield (torch.from_numpy(np.ascontiguousarray(x[start : start + size])).to(device),
               torch.from_numpy(y[start : start + size]).to(device))


class AudioFamily(Family):
    """Keyword spotting: cross-entropy on augmented waveforms; validation loss and accuracy on held-out voices."""

    monitor = ("val_accuracy", "max")
    hyperparameters = {"optimizer": "adamw", "weight_decay": 1e-3, "augment": True,  # noqa: RUF012
                       "shift": 0.1, "gain_db": 6.0, "noise": 0.01, "freq_mask": 7, "time_mask": 20}

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        if data.audio is None:
            return {"num_classes": data.num_classes}
        return {"num_classes": data.num_classes, "samples": data.audio.num_samples,
                "sample_rate": data.audio.sample_rate}

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str,
                      ctx: RunContext) -> dict[str, torch.Tensor]:
        waveforms, labels = batch
        hp = ctx.hyperparameters
        mask = None
        if hp["augment"]:
            cfg = AudioAugment(shift=float(hp["shift"]), gain_db=float(hp["gain_db"]), noise=float(hp["noise"]),
                               freq_mask=int(hp["freq_mask"]), time_mask=int(hp["time_mask"]))
            gen = generator(ctx.seed + ctx.rank, ctx.epoch, ctx.step)
            core = getattr(model, "module", model)  # under DDP
            waveforms = augment_waveforms(waveforms, cfg, int(core.sample_rate), gen)
            if getattr(core, "takes_mask", False):
                lm = core.logmel.cfg
                mask = spec_masks(len(waveforms), lm.n_mels, lm.frames(waveforms.shape[1]), cfg, gen)
                mask = mask.to(waveforms.device, waveforms.dtype)
        logits = model(waveforms, mask)
        loss = F.cross_entropy(logits, labels)
        return {"loss": loss, "accuracy": (logits.argmax(dim=1) == labels).float().mean()}

    def evaluate(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        data = ctx.data
        total_loss, correct = 0.0, 0
        for waveforms, labels in batches(data.x_val, data.y_val, 256, ctx.device):
            logits = model(waveforms)
            total_loss += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
            correct += int((logits.argmax(dim=1) == labels).sum())
        n = max(1, len(data.y_val))
        return {"val_loss": total_loss / n, "val_accuracy": correct / n}

    def graphs(self, model: torch.nn.Module, data: DataInfo) -> list[GraphSpec]:
        samples = int(model.samples)
        facts = audio_facts(model)
        return [data_graph(
            model, input_name="waveform", output_name="logits", sample_shape=(samples,), random_scale=0.1,
            classes=True, role="keyword-spotter",
            role_info={"input": "waveform", "output": "logits", "class_names": list(data.class_names),
                       "num_classes": len(data.class_names), "input_kind": "audio",
                       "sample_rate": facts["sample_rate"], "samples": samples},
            metadata={"zoo_audio": json.dumps(facts)},
            int8_float_modules=("logmel",) if hasattr(model, "logmel") else (), atol=1e-4, rtol=1e-4)]

    def report_sections(self, context: ReportContext) -> list[ReportSection]:
        """Confusion matrix, the clips the model finds hardest with their spectrograms and players, and the
        attributions of some clips on their time-frequency maps."""
        from zoo_audio.report import audio_sections

        return audio_sections(context, self)

    def input_space(self, model: torch.nn.Module, data: DataInfo) -> InputSpace:
        """``zoo explain``: WAV files as ``zoo predict`` reads them, attributed on the log-mel spectrogram (on the
        STFT for a raw-waveform model) and drawn as a time-frequency map (:mod:`zoo_audio.explain`)."""
        from zoo_audio.explain import input_space

        return input_space(model, data)
