"""DistributedDataParallel plumbing: joining the process group, and samplers that split the
data across processes deterministically (so a resumed or a DDP run sees the same batches)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def distributed_setup() -> tuple[int, int]:
    """Join the process group when launched by torchrun; (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` over all processes (in place); `t` itself when not distributed."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


class Shard(Sampler[int]):
    """Every world_size-th sample, no padding: validation counts each image exactly once."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class EpochShuffle(Sampler[int]):
    """A permutation that depends only on (seed, epoch), split across DDP ranks."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 10_007 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        per_rank = math.ceil(self.n / self.world)
        # pad (cycling, even when there are fewer samples than ranks) so every rank has as many batches
        order = (order * math.ceil(per_rank * self.world / max(1, self.n)))[: per_rank * self.world]
        return iter(order[self.rank::self.world])

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)
