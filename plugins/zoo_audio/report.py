"""The audio family's report sections: the validation confusion matrix, the worst-classified clips with
their log-mel spectrograms and players (``<audio>`` elements with the clips as data URLs), and attributions."""

from __future__ import annotations

import numpy as np
import torch

from zoo.family import Family, ReportAudio, ReportContext, ReportImage, ReportSection

#: Validation clips shown (and playable) in the "worst classified" section.
WORST_SHOWN = 8
#: Each spectrogram cell becomes a square of this many pixels.
ZOOM = 3


def spectrogram_pixels(clips: np.ndarray, sample_rate: int) -> np.ndarray:
    """N×1×H×W pictures in [0, 1] of the clips' log-mel spectrograms (low frequencies at the bottom)."""
    from zoo_audio.frontend import FrontEnd, LogMel

    with torch.no_grad():
        logmel = LogMel(FrontEnd(sample_rate=sample_rate))(torch.from_numpy(np.ascontiguousarray(clips))).numpy()
    low = logmel.min(axis=(1, 2), keepdims=True)
    high = logmel.max(axis=(1, 2), keepdims=True)
    pixels = (logmel - low) / np.maximum(high - low, 1e-6)
    pixels = pixels[:, ::-1, :].repeat(ZOOM, axis=1).repeat(ZOOM, axis=2)
    return np.ascontiguousarray(pixels[:, None])


def audio_sections(context: ReportContext, family: Family) -> list[ReportSection]:
    """Confusion matrix, the clips the model finds hardest (lowest probability of the true class), and the
    attributions of the worst and best clips on their time-frequency maps (``family``'s input space)."""
    from zoo.explain.report import space_attribution_section
    from zoo.toolkit.classifiers import confusion_section, worst_classified
    from zoo_audio.family import batches

    model, data = context.model_and_data()
    with torch.no_grad():
        probabilities = torch.cat([model(x).softmax(dim=1) for x, _ in batches(data.x_val, data.y_val, 256, "cpu")])
    probabilities = probabilities.numpy()
    truth, predicted = np.asarray(data.y_val), probabilities.argmax(axis=1)
    names = list(data.info.class_names)
    worst, listing = worst_classified(truth, probabilities, names, WORST_SHOWN,
                                      "worst classified; spectrograms left to right in this order")
    rate = data.info.audio.sample_rate
    clips = np.asarray(data.x_val[worst], dtype=np.float32)
    labels = [f"#{rank + 1}: {names[truth[i]]} heard as {names[predicted[i]]} (p={probabilities[i, truth[i]]:.2f})"
              for rank, i in enumerate(worst)]
    return [
        confusion_section(truth, probabilities, names, "clips (voices not heard in training)"),
        ReportSection("Worst-classified validation clips", tables=[listing],
                      images=[ReportImage.from_pixels(spectrogram_pixels(clips, rate),
                                                      f"log-mel spectrograms of the {len(worst)} worst clips",
                                                      columns=4)],
                      sounds=[ReportAudio.from_samples(c, rate, label) for c, label in zip(clips, labels,
                                                                                          strict=True)]),
        space_attribution_section(model, family, data, probabilities),
    ]
