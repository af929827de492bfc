"""Batches straight from one uint8 image tensor, augmented a whole batch at a time.

For 28×28 images a per-sample pipeline (PIL image → crop → flip → resize → tensor, one
image at a time, then collate) costs more than the tiny network's training step. Here the
dataset is one uint8 tensor that lives where the model trains (on the GPU there), and every
augmentation is one batched tensor operation:

    index a batch → float in [0, 1] → random shift by up to `shift` pixels (zero padding,
    like RandomCrop(28, padding=shift)) → random horizontal flip → resize to `resolution`
    (bilinear; antialiased when shrinking) → normalise

Randomness comes from one generator seeded by (`seed`, epoch), drawn on the CPU, so a run
is repeatable, and the same on any device, for a given seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F


class TensorBatches:
    """An iterable of (images, labels) batches, like a DataLoader, over tensors in memory.

    images: (N, H, W) or (N, C, H, W) uint8. `train=True` shuffles and augments; otherwise the
    batches are in order and only resized and normalised. Call `set_epoch(e)` (or iterate again:
    each iteration advances the epoch) to get a new shuffle.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, resolution: int,
                 mean: float | tuple[float, ...], std: float | tuple[float, ...], train: bool = False,
                 shift: int = 2, flip: bool = True, seed: int = 0, device: torch.device | str = "cpu",
                 drop_last: bool | None = None, channels_last: bool = False):
        if images.dtype != torch.uint8 or images.dim() not in (3, 4):
            raise ValueError(f"images must be a uint8 tensor of shape (N, H, W) or (N, C, H, W), not "
                             f"{images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1 or resolution < 1 or shift < 0:
            raise ValueError(f"batch_size and resolution must be ≥ 1 and shift ≥ 0, not {batch_size}, "
                             f"{resolution}, {shift}")
        self.device = torch.device(device)
        self.images = (images if images.dim() == 4 else images[:, None]).to(self.device)
        self.labels = labels.to(self.device, torch.long)
        channels = self.images.shape[1]
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).expand(channels).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).expand(channels).view(1, -1, 1, 1)
        self.batch_size, self.resolution, self.train = batch_size, resolution, train
        self.shift, self.flip, self.seed = shift, flip, seed
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        n = len(self.labels)
        order = torch.randperm(n, generator=g) if self.train else torch.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size].to(self.device)
            yield self.batch(index, g if self.train else None), self.labels[index]

    def batch(self, index: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The float batch of `index`: augmented when a generator is given, then resized and normalised."""
        x = self.images[index].float().div_(255)
        if generator is not None:
            x = self._augment(x, generator)
        size = x.shape[-1]
        if size != self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False,
                              antialias=self.resolution < size)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.shift:  # one gather: pixel (y, x) of sample n comes from (y + dy[n], x + dx[n]) of the padded batch
            s = self.shift
            dy = torch.randint(0, 2 * s + 1, (b,), generator=g).to(x.device)
            dx = torch.randint(0, 2 * s + 1, (b,), generator=g).to(x.device)
            padded = F.pad(x, (s, s, s, s))
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
            batch = torch.arange(b, device=x.device)[:, None, None, None]
            chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = padded[batch, chans, rows, cols]
        if self.flip:
            flip = (torch.rand(b, generator=g) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x
