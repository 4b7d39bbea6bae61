"""A classifier's report tables, for any kind of sample (documented in docs/plugins.md, "The toolkit"): the
confusion matrix and the worst-classified validation samples. numpy only; no family named here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zoo.reports.sections import ReportSection, ReportTable


def confusion_section(truth: np.ndarray, probabilities: np.ndarray, names: Sequence[str],
                      what: str) -> ReportSection:
    """"Confusion matrix": true classes down, predicted across, captioned with the count of validation
    ``what`` (``"images"``) and the accuracy."""
    truth, predicted = np.asarray(truth), np.asarray(probabilities).argmax(axis=1)
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    accuracy = float((truth == predicted).mean())
    table = ReportTable(["true \\ predicted", *names], [[names[i], *map(int, matrix[i])] for i in range(len(names))],
                        caption=f"{len(truth)} validation {what}, accuracy {100 * accuracy:.2f}%")
    return ReportSection("Confusion matrix", tables=[table])


def worst_classified(truth: np.ndarray, probabilities: np.ndarray, names: Sequence[str], count: int,
                     caption: str) -> tuple[np.ndarray, ReportTable]:
    """The ``count`` validation samples with the lowest true-class probability (their indices, worst first) and
    the table listing them (rank, true, predicted, p(true), p(predicted))."""
    truth = np.asarray(truth)
    probabilities = np.asarray(probabilities)
    predicted = probabilities.argmax(axis=1)
    worst = np.argsort(probabilities[np.arange(len(truth)), truth], kind="stable")[:count]
    table = ReportTable(["#", "true", "predicted", "p(true)", "p(predicted)"],
                        [[rank + 1, names[truth[i]], names[predicted[i]], float(probabilities[i, truth[i]]),
                          float(probabilities[i, predicted[i]])] for rank, i in enumerate(worst)],
                        caption=caption)
    return worst, table
