"""The model adapted to the run: starting weights (``--init``, ``--freeze-backbone``) and the options that
scale training (``--compile``, ``--channels-last``, activation checkpointing, ``--crop-flip``).

``zoo train --init FILE.safetensors``: start from weights the user already has.

A state dict in the model's own layout (torchvision's for the ResNets, timm's for the ViTs) is loaded
into the freshly built model. The classifier head (the model's last ``nn.Linear``) starts fresh when the
class count differs; any other missing, unexpected or mis-shaped key is one clear line. Only safetensors
files are read: nothing is unpickled. ``--freeze-backbone`` trains the head alone (linear probing), with
the backbone's batch-norm statistics frozen too.

Options for training bigger models on the same engine: compile, channels-last, activation checkpointing,
ImageNet-style augmentation. Each is applied in one place, so the loop only calls in here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zoo.digest import file_sha256
from zoo.errors import ZooError
from zoo.run_layout import CONFIG, WEIGHTS
from zoo.state_dicts import mismatch

# === starting weights ================================================================================================

#: A model folder (``save_pretrained``'s, a Hugging Face cache snapshot) holds its weights and config under the
#: same names a run folder uses.
FOLDER_WEIGHTS, FOLDER_CONFIG = WEIGHTS, CONFIG
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")
#: Leading parts some checkpoints add to every key (``DataParallel``'s ``module.``, Lightning's ``model.``).
PREFIXES = ("module.", "model.")


@dataclass
class InitRecord:
    """Where a run's starting weights came from: written to ``config.json`` and the model card."""

    path: str
    sha256: str
    origin: str  # the file's own "origin"/"source" metadata if any, else its path
    tensors: int
    head: str | None = None  # the head that started fresh (class count differed), if any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_state(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors and metadata of a safetensors file; a pickle file is refused with the conversion to run."""
    from safetensors import SafetensorError, safe_open

    path = init_path(path)
    refuse_pickle(path)
    config_json = None
    if path.is_dir():  # a Hugging Face model folder: its weights and the config.json beside them
        config = path / FOLDER_CONFIG
        config_json = config.read_text(encoding="utf-8", errors="replace") if config.is_file() else None
        path = path / FOLDER_WEIGHTS
        if not path.exists():
            raise ZooError(f"--init {path.parent} is a folder without {FOLDER_WEIGHTS}; give a .safetensors file "
                           "or a Hugging Face model folder")
    check_regular_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ZooError(f"--init {path} is not a readable safetensors file ({exc})") from exc
    if config_json is not None:
        metadata[FOLDER_CONFIG] = config_json
    return _strip_prefixes(state), metadata


def check_regular_file(path: Path) -> None:
    """``path`` is a regular file (through symlinks), checked before opening it: a FIFO would block forever and
    a device (``/dev/zero``) never ends. Each other kind is named in one line."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ZooError(f"--init {path} does not exist; give a .safetensors file of the model's weights") from None
    except OSError as exc:
        raise ZooError(f"--init {path} cannot be read ({exc.strerror}); give a .safetensors file") from None
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    for test, kind in kinds.items():
        if test(mode):
            via = f" (a symbolic link to {os.path.realpath(path)})" if path.is_symlink() else ""
            raise ZooError(f"--init {path} is {kind}{via}, not a file; give a .safetensors file of the model's "
                           "weights")


def init_path(value: str | Path) -> Path:
    """The file or folder an ``--init`` value names: a path, or ``hf:ORG/NAME`` in the local Hugging Face cache."""
    from zoo.hub import is_hub_id, resolve

    return resolve(str(value)) if is_hub_id(str(value)) else Path(value)


def init_config(value: str | Path) -> tuple[str | None, str]:
    """The ``config.json`` text of an ``--init`` model folder (None for a plain file) and the origin to name."""
    path = init_path(value)
    config = path / FOLDER_CONFIG
    if path.is_dir() and config.is_file():
        try:
            return config.read_text(encoding="utf-8", errors="replace"), str(value)
        except OSError:
            return None, str(value)
    return None, str(value)


def refuse_pickle(path: str | Path) -> None:
    """A pickle checkpoint is never loaded: one line with the conversion to run once."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        target = path.with_suffix(".safetensors")
        raise ZooError(
            f"--init {path}: zoo reads safetensors only (a {path.suffix} file is a pickle and is never loaded); "
            f"convert it once where you trust the file: python -c \"import torch; from safetensors.torch import "
            f"save_file; save_file({{k: v.contiguous() for k, v in torch.load('{path}', map_location='cpu', "
            f"weights_only=True).items()}}, '{target}')\""
        )


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    for prefix in PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            return {key[len(prefix):]: value for key, value in state.items()}
    return state


def head_name(model: Any) -> str | None:
    """The classifier head: the last ``nn.Linear`` the model registers (``fc`` for a ResNet, ``head`` for a ViT)."""
    from torch import nn

    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return names[-1] if names else None


def load_init(model: Any, path: str | Path, model_name: str, say: bool = True) -> InitRecord:
    """Load ``path`` into ``model``; a differing class count gets a fresh head (said in one line)."""
    given, path = str(path), init_path(path)
    state, metadata = read_state(path)
    if callable(getattr(model, "import_state_dict", None)):  # a model that reads other layouts (docs/plugins.md)
        state = model.import_state_dict(state, metadata)
    if path.is_dir():
        path = path / FOLDER_WEIGHTS
    expected = model.state_dict()
    head = head_name(model)
    head_keys = {f"{head}.weight", f"{head}.bias"} if head else set()
    fresh_head = None
    if head_keys and all(k in state and k in expected for k in head_keys) and any(
            tuple(state[k].shape) != tuple(expected[k].shape) for k in head_keys):
        classes_there, classes_here = state[f"{head}.weight"].shape[0], expected[f"{head}.weight"].shape[0]
        for key in head_keys:
            del state[key]
        fresh_head = head
        if say:
            print(f"zoo: --init {path.name} has {classes_there} classes, the data {classes_here}: "
                  f"the head `{head}` starts fresh", file=sys.stderr)
    # BatchNorm's step counter is not a weight: files that leave it out still fit.
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    problem = mismatch(expected, state, optional=optional | (head_keys if fresh_head else set()))
    if problem:
        raise ZooError(f"--init {path} does not fit model {model_name!r}: {problem}; give weights of "
                       f"this architecture in {_layouts(model)}")
    check_values(state, expected, path)
    import torch

    with torch.no_grad():
        for key, value in state.items():
            expected[key].copy_(value.to(expected[key].dtype))
    origin = metadata.get("origin") or metadata.get("source") or str(path.resolve())
    if given.startswith("hf:"):  # the id the user gave, and the cached snapshot it resolved to
        origin = f"{given} (snapshot {path.parent.name})"
    return InitRecord(path=str(path.resolve()), sha256=file_sha256(path), origin=origin, tensors=len(state),
                      head=fresh_head)


def check_values(state: dict[str, Any], expected: dict[str, Any], path: Path) -> None:
    """Refuse what a cast would hide: integer or boolean tensors for floating-point parameters (an int32 copy
    of weights is not those weights), and weights that are NaN or infinite (training could only diverge)."""
    import torch

    for key, value in state.items():
        target = expected[key]
        if target.is_floating_point() and not value.is_floating_point():
            raise ZooError(f"--init {path}: tensor {key!r} is stored as {str(value.dtype).replace('torch.', '')}, "
                           f"but the model's parameter is {str(target.dtype).replace('torch.', '')}; give the "
                           "weights as floating-point tensors (they were not cast)")
        if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ZooError(f"--init {path}: tensor {key!r} holds {bad} NaN or infinite value(s) of "
                           f"{value.numel()}; give weights that are finite")


def _layouts(model: Any) -> str:
    """The layouts ``--init`` reads for this model, for the error line: the model's own word when it has one."""
    described = getattr(model, "init_layouts", None)
    return described if isinstance(described, str) else "the model's own layout (its state_dict's names and shapes)"


def freeze_backbone(model: Any) -> str:
    """Train the head alone: every other parameter is frozen and batch norm keeps its statistics."""
    from torch import nn

    head = head_name(model)
    if head is None:
        raise ZooError("--freeze-backbone needs a model whose last nn.Linear is its classifier head")
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(head + "."))
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not name.startswith(head):
            module.train = _stay_in_eval.__get__(module)  # model.train() leaves these in eval mode
            module.eval()
    return head


def _stay_in_eval(self: Any, mode: bool = True) -> Any:
    from torch import nn

    return nn.Module.train(self, False)


# === scaling options =================================================================================================

def prepare_model(net: Any, options: Any, device: Any, say: bool) -> None:
    """Apply ``--checkpoint-activations``, ``--channels-last`` and ``--compile`` to the built model, in place."""
    import torch

    if options.checkpoint_activations:
        if not hasattr(net, "checkpoint_activations"):
            raise ZooError(f"--checkpoint-activations: model {type(net).__name__} does not support it (a model "
                           "supports it with a checkpoint_activations attribute its forward reads); drop the flag")
        net.checkpoint_activations = True
    if options.channels_last:
        net.to(memory_format=torch.channels_last)
    if options.compile:
        problem = compiler_problem(device)
        if problem is None:
            net.compile()  # in place: the module, its state-dict names and the DDP wrapping stay the same
        elif say:
            print(f"zoo: --compile is not available here ({problem}); training eagerly", file=sys.stderr)


def compiler_problem(device: Any) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` (a tiny function is compiled and run), or None."""
    import torch

    try:
        probe = torch.compile(lambda x: x * 2 + 1, dynamic=False)
        probe(torch.ones(4, device=device))
    except Exception as exc:  # a missing C++ compiler or Triton, an unsupported platform...
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
    return None


def prepare_batch(batch: Any, options: Any, *, seed: int, epoch: int, index: int) -> Any:
    """``--crop-flip`` (drawn from seed, epoch and batch: resume stays exact) and ``--channels-last`` on a batch."""
    if options.crop_flip:
        from zoo.data.crop_flip import crop_flip_batch

        batch = crop_flip_batch(batch, seed=seed, epoch=epoch, index=index)
    if options.channels_last and getattr(batch[0], "ndim", 0) == 4:
        import torch

        batch = (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])
    return batch
