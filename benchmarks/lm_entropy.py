"""Unigram and bigram byte entropy of the embedded text (pydoc-topics, seed 0 split): the baselines for `lm` runs.

Both are cross-entropies on the validation bytes of models counted on the training bytes (add-one smoothing),
in bits per byte, plus the training text's own (in-sample) entropies.

    python benchmarks/lm_entropy.py
"""

from __future__ import annotations

import numpy as np

from zoo.data import load_dataset


def main() -> None:
    data = load_dataset("pydoc-topics", seed=0)
    train, val = data.x_train.reshape(-1).astype(np.int64), data.x_val.reshape(-1).astype(np.int64)
    uni = np.bincount(train, minlength=256) + 1.0
    uni /= uni.sum()
    big = np.ones((256, 256))
    np.add.at(big, (train[:-1], train[1:]), 1)
    big /= big.sum(axis=1, keepdims=True)
    counts = np.bincount(train, minlength=256)
    p = counts[counts > 0] / counts.sum()
    pairs = np.zeros((256, 256))
    np.add.at(pairs, (train[:-1], train[1:]), 1)
    joint = pairs / pairs.sum()
    cond = pairs / np.maximum(pairs.sum(axis=1, keepdims=True), 1)
    nz = joint > 0
    print(f"training bytes {len(train)}, validation bytes {len(val)}")
    print(f"unigram: in-sample entropy {-(p * np.log2(p)).sum():.3f} bits/byte, "
          f"validation cross-entropy {-np.log2(uni[val]).mean():.3f}")
    print(f"bigram: in-sample conditional entropy {-(joint[nz] * np.log2(cond[nz])).sum():.3f} bits/byte, "
          f"validation cross-entropy {-np.log2(big[val[:-1], val[1:]]).mean():.3f}")


if __name__ == "__main__":
    main()
