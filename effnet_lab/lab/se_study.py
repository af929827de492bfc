"""Squeeze-excitation in a trained network: build it, read its gates, switch them off.

The only ImageNet weights that work offline are EfficientNet-Lite's, and Lite has no SE.
So this module builds the honest substitute the SE notebook studies:

    the pretrained Lite0 trunk, frozen  +  one SqueezeExcite per MBConv block (B0's ratio
    0.25, placed exactly where B0 has them)  +  a new classifier

where only the SE modules and the classifier are trained, on real photos (the demo
dataset). Each SE starts as a gate that passes everything (σ(3) ≈ 0.95 for every channel
and image: zero weights in its expand conv, bias `GATE_INIT_BIAS`), so training starts
from the pretrained Lite0 and whatever the gates do afterwards was learned from the photos.
`data/weights/build_se_lite0_demo.py` trains it and ships the result; `load_se_lite0`
rebuilds it in a second.

Tools for the study, usable on any network with `SqueezeExcite` modules (B0 included):

    se_modules(model)                      [(name, module)] in forward order
    record_gates(model)                    context manager: {name: [(N, C) gates]} via forward hooks
    record(model, images)                  gates, pooled inputs z and logits of one pass
    collect_gates(model, images)           {name: (N, C) gates} for a batch of images
    random_gates(model, squeezed)          control: untrained SE modules on the same inputs
    override_gates(model, mode, ...)       context manager: gates = 1 ("ones") or fixed values
    remove_se(model)                       a copy with every SE module taken out
    class_specificity(gates, labels)       share of the gates' variance explained by the class
    evaluate_tensors(model, images, labels)  loss, accuracy, p(right class) (the library's evaluate)

Training goes through the library's loop (`effnet_lab.train.loop`), as every run does.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..data.config import resolve_data_config
from ..data.folders import image_folder_datasets
from ..data.resources import data_path
from ..data.transforms import create_transform
from ..model.blocks import SqueezeExcite, make_activation
from ..model.network import EfficientNet, optimizer_param_groups
from ..model.registry import create_model
from ..paper.architecture import B0_STAGES, config_from_dict, config_to_dict
from ..train.loop import EvalResult, evaluate, seed_everything, train_one_epoch
from ..weights.checkpoint import read_checkpoint, save_atomic
from .measure import count_flops, count_params

GATE_INIT_BIAS = 3.0  # σ(3) = 0.953: every gate starts (almost) fully open
WEIGHTS_FILE = "se_lite0_demo.pth"
TRUNK = "efficientnet_lite0"


# ----------------------------------------------------------------------------- building
def se_modules(model: nn.Module) -> list[tuple[str, SqueezeExcite]]:
    """Every SqueezeExcite in `model`, in forward order, with its module name."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SqueezeExcite)]


def short_name(name: str) -> str:
    """'stages.3.1.se' → 's3.1' (stage 3, block 1), for plot labels."""
    parts = name.split(".")
    return f"s{parts[1]}.{parts[2]}" if len(parts) >= 3 and parts[0] == "stages" else name


def open_gates(model: nn.Module, bias: float = GATE_INIT_BIAS) -> nn.Module:
    """Make every SE gate a constant σ(bias) for every image: zero the expand conv's weights.

    Training then starts from a network that behaves like the one without SE (the gates pass
    ~95% of every channel) and can only move away from it by learning from data.
    """
    with torch.no_grad():
        for _, se in se_modules(model):
            se.expand.weight.zero_()
            se.expand.bias.fill_(bias)
    return model


def build_se_lite0(num_classes: int = 4, gate_init_bias: float = GATE_INIT_BIAS,
                   seed: int = 0, se_act: str = "silu") -> EfficientNet:
    """Lite0's pretrained trunk with an (untrained, open) SE gate in every block + a new head.

    The architecture is Lite0's (ReLU6, TF padding, fixed stem/head) with B0's stage table,
    i.e. SE ratio 0.25 in every block: the same layers and parameter count as B0. The SE
    modules are B0's, SiLU inside included (`se_act`); the trunk keeps Lite0's ReLU6.
    """
    lite = create_model(TRUNK, pretrained=True)
    torch.manual_seed(seed)
    model = EfficientNet(replace(lite.config, stages=B0_STAGES), num_classes=1000, pretrained_cfg=dict(
        lite.pretrained_cfg, architecture=f"{TRUNK} + SE (B0 ratio 0.25)"))
    result = model.load_state_dict(lite.state_dict(), strict=False)
    se_keys = {f"{n}.{p}" for n, m in se_modules(model) for p, _ in m.named_parameters()}
    assert set(result.missing_keys) == se_keys and not result.unexpected_keys, result
    for _, se in se_modules(model):
        se.act = make_activation(se_act)
    model.reset_classifier(num_classes)
    return open_gates(model, gate_init_bias)


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that were trained on top of the frozen trunk: SE modules + classifier."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if ".se." in k or k.startswith("classifier.")}


def weights_path() -> Path:
    return data_path("weights", WEIGHTS_FILE)


def load_se_lite0(path: str | Path | None = None, head: str = "se") -> EfficientNet:
    """The trained network from `data/weights/se_lite0_demo.pth`, ready for eval.

    head="se": Lite0 trunk + trained SE gates + the classifier trained with them.
    head="no_se": plain Lite0 (no SE at all) + a classifier trained alone with the same
    recipe — the fair baseline for "what does SE add".
    """
    state, meta = _read(path)
    if head == "se":
        model = build_se_lite0(len(meta["class_names"]))
        model.load_state_dict({k: v.float() for k, v in state.items() if not k.startswith("no_se.")},
                              strict=False)
    elif head == "no_se":
        model = create_model(TRUNK, pretrained=True)
        model.reset_classifier(len(meta["class_names"]))
        model.load_state_dict({k.removeprefix("no_se."): v.float() for k, v in state.items()
                               if k.startswith("no_se.")}, strict=False)
    else:
        raise ValueError(f"head must be 'se' or 'no_se', got {head!r}")
    # what training added: class names, and how it was trained (recipe, history, average gates)
    model.fine_tune = dict(meta, label_names=list(meta["class_names"]))
    return model.eval()


def freeze_all_but(model: nn.Module, keep: Callable[[str], bool]) -> list[nn.Parameter]:
    model.requires_grad_(False)
    params = []
    for name, p in model.named_parameters():
        if keep(name):
            p.requires_grad_(True)
            params.append(p)
    return params


# ----------------------------------------------------------------------------- data
def demo_datasets(model: nn.Module, train_augment: bool = True, root: str | Path | None = None):
    """The demo dataset (train, val, summary) with the model's own preprocessing."""
    cfg = resolve_data_config(model)
    train_tf = create_transform(**cfg, is_training=True, scale=(0.25, 1.0), color_jitter=0.2) \
        if train_augment else create_transform(**cfg)
    return image_folder_datasets(root or data_path("demo"), train_tf, create_transform(**cfg))


def stack(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole (small) dataset into two tensors: images (N, 3, H, W), labels (N,)."""
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


# ----------------------------------------------------------------------------- training
def train_trainable(model: nn.Module, train_set, *, train_se: bool = True, epochs: int = 12,
                    batch_size: int = 16, lr: float = 3e-3, weight_decay: float = 0.01,
                    label_smoothing: float = 0.1, seed: int = 0, log: Callable[[str], None] | None = print,
                    val: tuple[torch.Tensor, torch.Tensor] | None = None,
                    channels_last: bool = False) -> list[dict[str, float]]:
    """Train the SE modules and the classifier (train_se=False: the classifier only) of a
    frozen-trunk network, through the library's loop (`train.loop.train_one_epoch`). The trunk
    stays in eval mode: its BatchNorm statistics are the ImageNet ones. AdamW (no weight decay on
    biases), one-cycle cosine schedule; every epoch reseeds from (seed, epoch), so a run is
    reproducible on the same machine."""
    keep = (lambda n: ".se." in n or n.startswith("classifier.")) if train_se else \
        (lambda n: n.startswith("classifier."))
    freeze_all_but(model, keep)
    opt = torch.optim.AdamW(optimizer_param_groups(model, lr, weight_decay), lr=lr)
    steps_per_epoch = -(-len(train_set) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.1, anneal_strategy="cos")
    model.eval()  # frozen BatchNorm statistics, no dropout
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    history = []
    for epoch in range(epochs):
        seed_everything(seed * 1000 + epoch)
        order = torch.randperm(len(train_set)).tolist()
        # its own generator, so that iterating draws nothing from the seeded global one
        loader = DataLoader(train_set, batch_size, sampler=order, generator=torch.Generator())
        stats = train_one_epoch(model, loader, opt, scheduler=sched, channels_last=channels_last,
                                label_smoothing=label_smoothing)
        row = {"epoch": epoch + 1, "train_loss": stats["loss"], "train_acc": stats["acc"], "time_s": stats["time_s"]}
        if val is not None:
            result = evaluate_tensors(model, *val, channels_last=channels_last)
            row.update(val_acc=result.accuracy, val_loss=result.loss, val_p_true=result.p_true)
        history.append(row)
        if log:
            log("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    model.requires_grad_(False)
    model.to(memory_format=torch.contiguous_format)
    return history


def save_trained(path: str | Path, se_model: nn.Module, no_se_model: nn.Module | None,
                 meta: dict[str, Any], dtype: torch.dtype = torch.float16) -> Path:
    """SE + classifier of `se_model` (and the classifier of the no-SE baseline), in `dtype`."""
    state = {k: v.to(dtype) for k, v in trainable_state_dict(se_model).items()}
    if no_se_model is not None:
        state.update({f"no_se.{k}": v.detach().to(dtype) for k, v in no_se_model.state_dict().items()
                      if k.startswith("classifier.")})
    meta = dict(meta, model_config=config_to_dict(se_model.config))
    return save_atomic({"state_dict": state, **meta}, path)


def _read(path: str | Path | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, everything else) of a file written by `save_trained` (tensors and plain
    types only: read with weights_only=True)."""
    obj = dict(read_checkpoint(path or weights_path()))
    return obj.pop("state_dict"), obj


def saved_config(path: str | Path | None = None):
    """The architecture stored with the weights (the SE-equipped Lite0)."""
    return config_from_dict(_read(path)[1]["model_config"])


# ----------------------------------------------------------------------------- measuring
@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    model.eval()
    return torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def evaluate_tensors(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 64,
                     channels_last: bool = False) -> EvalResult:
    """`train.loop.evaluate` over images already in memory: loss, accuracy, mean p(right class)."""
    loader = DataLoader(TensorDataset(images, labels), batch_size)
    return evaluate(model, loader, model.num_classes, channels_last=channels_last)


@contextlib.contextmanager
def record_gates(model: nn.Module, squeezed: dict[str, list[torch.Tensor]] | None = None,
                 ) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Within the block, every forward pass appends each SE module's gates, (N, C), to
    `gates[name]` (and, if a dict `squeezed` is given, its pooled input z, (N, C), to
    `squeezed[name]`). Forward hooks: the model itself is not modified."""
    gates: dict[str, list[torch.Tensor]] = {name: [] for name, _ in se_modules(model)}
    handles = []
    for name, se in se_modules(model):
        def hook(module, inputs, output, name=name):
            gates[name].append(module.gate(inputs[0]).flatten(1).detach())
            if squeezed is not None:
                squeezed.setdefault(name, []).append(inputs[0].mean((2, 3)).detach())
        handles.append(se.register_forward_hook(hook))
    try:
        yield gates
    finally:
        for h in handles:
            h.remove()


@dataclass
class GateRecording:
    """What one pass over a set of images saw, per SE module: the gates s and the pooled
    inputs z they were computed from (both (N images, C channels)); and the logits."""

    gates: dict[str, torch.Tensor]
    squeezed: dict[str, torch.Tensor]
    logits: torch.Tensor


def record(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> GateRecording:
    """Run `images` through `model` once, recording every SE module's gates and inputs."""
    squeezed: dict[str, list[torch.Tensor]] = {}
    with record_gates(model, squeezed) as gates:
        logits = predict_logits(model, images, batch_size)
    return GateRecording({k: torch.cat(v) for k, v in gates.items()},
                         {k: torch.cat(v) for k, v in squeezed.items()}, logits)


def collect_gates(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """{SE module name: gates (N images, C channels)} for a batch of images."""
    return record(model, images, batch_size).gates


@torch.no_grad()
def random_gates(model: nn.Module, squeezed: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """A control: the gates that *untrained* SE modules (same shapes, PyTorch's default random
    init) would compute from the very same pooled inputs z the trained ones received."""
    torch.manual_seed(seed)
    out = {}
    for name, se in se_modules(model):
        fresh = SqueezeExcite(se.reduce.in_channels, se.reduce.out_channels)
        fresh.act = copy.deepcopy(se.act)
        z = squeezed[name]
        out[name] = fresh.gate(z.view(*z.shape, 1, 1)).flatten(1)  # the mean of a 1×1 map is z itself
    return out


@contextlib.contextmanager
def override_gates(model: nn.Module, mode: str = "ones", values: dict[str, torch.Tensor] | None = None,
                   only: Sequence[str] | None = None) -> Iterator[None]:
    """Replace the gates of SE modules while inside the block.

    mode="ones": every gate is 1, i.e. the SE module passes its input unchanged (the same as
    removing it). mode="values": gate = values[name], one fixed number per channel (C,),
    the same for every image (e.g. the gates' mean over a dataset). `only`: the names of the
    SE modules to override (default: all).
    """
    if mode not in ("ones", "values"):
        raise ValueError(f"mode must be 'ones' or 'values', got {mode!r}")
    handles = []
    for name, se in se_modules(model):
        if only is not None and name not in only:
            continue
        if mode == "ones":
            hook = lambda module, inputs, output: inputs[0]  # noqa: E731
        else:
            g = values[name].view(1, -1, 1, 1)  # type: ignore[index]
            hook = lambda module, inputs, output, g=g: inputs[0] * g.to(inputs[0])  # noqa: E731
        handles.append(se.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def remove_se(model: nn.Module) -> nn.Module:
    """A deep copy of `model` with every SE module removed (blocks skip straight from the
    depthwise conv to the projection)."""
    out = copy.deepcopy(model)
    for m in out.modules():
        if getattr(m, "se", None) is not None and isinstance(m.se, SqueezeExcite):
            m.se = None
    return out


def class_specificity(gates: torch.Tensor, labels: torch.Tensor) -> float:
    """How much the class decides a layer's gates: for each channel, the share of the gate's
    variance across images that lies between class means (η², 0 = the same gate whatever the
    class, 1 = the class alone sets it), averaged over channels, weighted by variance."""
    gates = gates.double()
    total = ((gates - gates.mean(0)) ** 2).sum(0)  # per channel
    between = torch.zeros_like(total)
    for c in labels.unique():
        sel = gates[labels == c]
        between += len(sel) * (sel.mean(0) - gates.mean(0)) ** 2
    return (between.sum() / total.sum().clamp_min(1e-30)).item()


def class_mean_gates(gates: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, C): the mean gate of each channel over the images of each class."""
    return torch.stack([gates[labels == c].mean(0) for c in range(num_classes)])


def input_shapes(model: nn.Module, names: Sequence[str], resolution: int = 224) -> dict[str, tuple[int, ...]]:
    """{module name: the shape of its input} for one image of `resolution`² (forward hooks)."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [modules[n].register_forward_hook(
        lambda m, inputs, output, n=n: shapes.__setitem__(n, tuple(inputs[0].shape))) for n in names]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, resolution, resolution))
    finally:
        for h in handles:
            h.remove()
    return shapes


def se_cost_table(model: nn.Module, resolution: int = 224) -> list[dict[str, Any]]:
    """One row per block with an SE module: its channels and what the block and its SE module
    cost (parameters; FLOPs counted by FlopCounterMode on the real input shapes)."""
    blocks = [n.removesuffix(".se") for n, _ in se_modules(model)]
    se_names = [f"{b}.se" for b in blocks]
    shapes = input_shapes(model, blocks + se_names, resolution)
    modules = dict(model.named_modules())
    rows = []
    for b, s in zip(blocks, se_names, strict=True):
        block, se = modules[b], modules[s]
        rows.append(dict(
            block=short_name(s), channels=se.reduce.in_channels, squeeze=se.reduce.out_channels,
            map=shapes[s][-1], block_params=count_params(block), se_params=count_params(se),
            block_flops=count_flops(block, torch.zeros(shapes[b])), se_flops=count_flops(se, torch.zeros(shapes[s]))))
    return rows
