"""Does FSDP2 (torch.distributed.fsdp.fully_shard) run on the CPU with gloo? Three AdamW steps, then a gathered
state dict, in two processes.

    OMP_NUM_THREADS=1 torchrun --nproc-per-node 2 benchmarks/fsdp_probe.py > benchmarks/results/fsdp_probe-cpu.txt
"""

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard

dist.init_process_group("gloo")
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
for layer in model:
    if isinstance(layer, torch.nn.Linear):
        fully_shard(layer)
fully_shard(model)
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
for step in range(3):
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    print(f"rank {dist.get_rank()} step {step} loss {loss.item():.6f}", flush=True)
sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
if dist.get_rank() == 0:
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    print(f"torch {torch.__version__}, backend {dist.get_backend()}: full state dict gathered {shapes}")
dist.destroy_process_group()
