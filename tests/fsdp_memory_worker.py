"""Run by ``tests/test_fsdp.py`` (and ``tests/test_engine_cuda.py``) under torchrun: set up an FSDP trainer for the
cnn and report, per process, the bytes of parameter storage it holds after setup and after training (two
epochs, with their evaluations), with the device's allocated bytes on CUDA.

    python -m torch.distributed.run --nproc-per-node 2 --standalone tests/fsdp_memory_worker.py DEVICE OUT_DIR

Every live ``nn.Parameter`` counts (the sharded model's local shards, and any other copy of the model a process
kept), each storage once; process R writes ``OUT_DIR/rank-R.json``.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import torch


def parameter_bytes(device: str) -> int:
    """The bytes of every live parameter's storage on ``device``'s type (a sharded one's local shard), once each."""
    from torch.distributed.tensor import DTensor

    storages: dict[int, int] = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.nn.Parameter):
            local = obj.to_local() if isinstance(obj, DTensor) else obj
            if local.device.type == torch.device(device).type:
                storage = local.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def main(device: str, out: Path) -> None:
    from zoo.engine.distributed import shutdown, world_from_env
    from zoo.engine.loop import Trainer
    from zoo.engine.options import resolve_options

    world = world_from_env()
    options = resolve_options({}, {"model": "cnn", "smoke": True, "device": device, "strategy": "fsdp",
                                   "progress": False, "out": str(out / "runs")})
    trainer = Trainer(options, world)
    gc.collect()
    report = {"after_setup": parameter_bytes(device),
              "allocated_after_setup": torch.cuda.memory_allocated() if device == "cuda" else None}
    trainer.start()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit()
    gc.collect()
    report.update(after_training=parameter_bytes(device),
                  peak_allocated=torch.cuda.max_memory_allocated() if device == "cuda" else None)
    shutdown(world, trainer, finished=True)
    (out / f"rank-{world.rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
