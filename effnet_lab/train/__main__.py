"""`python -m effnet_lab.train` (and `torchrun ... -m effnet_lab.train`): fine-tune from a shell."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import torch.distributed as dist

from ..weights.pretrained import PretrainedUnavailable
from .config import build_parser, config_from_args
from .loop import TrainingError
from .trainer import Trainer, show_log


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # argparse reports its own errors (usage + one line), exit 2
    try:
        with show_log():  # the dataset summary and one line per epoch, on standard output
            trainer = Trainer(config_from_args(args))  # every check runs here, before the first step
            start = time.perf_counter()
            trainer.fit()
    except (TrainingError, ValueError, TypeError, PretrainedUnavailable, ImportError) as e:
        # DatasetError, CheckpointError and the settings' checks are ValueErrors: one line, no traceback
        print("error: " + " ".join(line.strip() for line in str(e).splitlines() if line.strip()), file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if trainer.is_main and trainer.history:
        best = max(trainer.history, key=lambda h: h.val_acc)
        print(f"done: {trainer.epoch} epochs in {time.perf_counter() - start:.1f}s on {trainer.device} "
              f"x{trainer.world}; best val acc {best.val_acc:.4f} (epoch {best.epoch}); "
              f"checkpoints in {trainer.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
