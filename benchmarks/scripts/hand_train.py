"""The hand-written training script `benchmarks/fixed_costs.py` compares a default `zoo train cnn` with.

What a user writes for the same job: the digits arrays (from a file prepared beforehand, so neither
side pays for scikit-learn), an 80/20 split, normalisation, the same model class, SGD (lr 0.02,
momentum 0.9), 12 epochs of batch 32, a validation pass per epoch, a JSON line of metrics per epoch,
and the weights saved as safetensors at the end.

    python benchmarks/scripts/hand_train.py DIGITS_NPZ OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from zoo_cnn.models import ArticleCNN


def main(digits: str, out: str) -> None:
    torch.manual_seed(0)
    with np.load(digits) as stored:
        images, labels = stored["images"][:, None].astype(np.float32) / 16.0, stored["labels"].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(0.8 * len(images))
    mean, std = images[order[:cut]].mean(), images[order[:cut]].std()
    x = torch.from_numpy((images - mean) / std)
    y = torch.from_numpy(labels)
    x_train, y_train, x_val, y_val = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
    model = ArticleCNN(in_channels=1, num_classes=10, image_size=[8, 8])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    Path(out).mkdir(parents=True, exist_ok=True)
    with (Path(out) / "metrics.jsonl").open("w") as log:
        for epoch in range(1, 13):
            model.train()
            perm = torch.randperm(len(x_train))
            total = torch.zeros(())
            for start in range(0, len(perm), 32):
                index = perm[start:start + 32]
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x_train[index]), y_train[index])
                loss.backward()
                optimizer.step()
                total += loss.detach()
            model.eval()
            with torch.no_grad():
                logits = model(x_val)
                val_loss = float(F.cross_entropy(logits, y_val))
                accuracy = float((logits.argmax(1) == y_val).float().mean())
            log.write(json.dumps({"epoch": epoch, "train_loss": float(total) / -(-len(perm) // 32),
                                  "val_loss": val_loss, "val_accuracy": accuracy}) + "\n")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(Path(out) / "model.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
