"""Training tokens per second of an `lm` preset: the zoo engine against a hand-written PyTorch loop.

Same model, data windows, batch, optimizer (the family's ClippedAdamW) with a LambdaLR stepped after it (the
engine's warm-up + cosine is one too), threads and seed; the engine run stops
after --steps optimizer steps (mid-epoch: no evaluation), and its time is the engine's own `seconds` minus nothing
(it includes the one checkpoint written at the stop). Rounds alternate the order.

    python benchmarks/lm_train_speed.py --model gpt-nano --steps 30 --rounds 2 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

import torch


def hand_loop(model_name: str, steps: int, seed: int) -> float:
    """Seconds for ``steps`` steps of a plain loop over the same windows as the engine's first epoch."""
    import torch.nn.functional as F
    from zoo_lm.family import LMFamily

    import zoo
    from zoo.data import load_dataset
    from zoo.engine.batches import epoch_order
    from zoo.family import RunContext
    from zoo.registry import get_spec

    spec = get_spec(model_name)
    family = LMFamily()
    hp = {**family.hyperparameters, **spec.defaults}
    raw = RunContext(hyperparameters=hp, data=load_dataset("pydoc-topics", seed=seed), spec=spec, seed=seed)
    data = family.prepare_data(raw, dict(spec.model_args))
    torch.manual_seed(seed)
    model = zoo.create_model(model_name, **family.data_args(spec, data.info))
    optimizer = family.configure_optimizers(model, replace(raw, data=data))["model"]
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)  # as many scheduler steps as the engine
    x = torch.from_numpy(data.x_train)
    order = epoch_order(len(x), seed, 1, 0, 1)
    batch = int(hp["batch_size"])
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        windows = x[order[step * batch:(step + 1) * batch]]
        optimizer.zero_grad(set_to_none=True)
        logits = model(windows[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
        loss.backward()
        loss.item()
        optimizer.step()
        schedule.step()
    return time.perf_counter() - start


def engine(model_name: str, steps: int, seed: int) -> float:
    import zoo

    with tempfile.TemporaryDirectory() as out:
        run = zoo.train(model_name, dataset="pydoc-topics", max_steps=steps, seed=seed, out=out, progress=False)
        return float(run.summary["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gpt-nano")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from zoo.registry import get_spec

    spec = get_spec(args.model)
    tokens = args.steps * spec.defaults["batch_size"] * spec.model_args["context"]
    times: dict[str, list[float]] = {"engine": [], "hand": []}
    for r in range(args.rounds):
        for kind in (("engine", "hand") if r % 2 == 0 else ("hand", "engine")):
            fn = engine if kind == "engine" else hand_loop
            times[kind].append(fn(args.model, args.steps, 0))
    e, h = statistics.median(times["engine"]), statistics.median(times["hand"])
    print(f"{args.model}, {args.steps} steps × {spec.defaults['batch_size']} windows × {spec.model_args['context']} "
          f"tokens, {args.threads} thread(s), median of {args.rounds} rounds")
    print(f"engine: {tokens / e:.0f} tokens/s ({e:.2f} s); hand loop: {tokens / h:.0f} tokens/s ({h:.2f} s); "
          f"engine / hand = {h / e:.3f} of the hand loop's speed")


if __name__ == "__main__":
    main()
