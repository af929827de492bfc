"""Training: the settings, the loop, and the Trainer that puts a run together.

    config       TrainConfig (every setting, saved in checkpoints) and the CLI generated from it
    loop         train_step, train_one_epoch, evaluate: functions that take their collaborators
    distributed  DDP set-up and deterministic samplers
    trainer      Trainer and finetune()
    __main__     python -m effnet_lab.train / torchrun -m effnet_lab.train
"""

from __future__ import annotations

from .config import STRATEGIES, TrainConfig, build_parser, config_from_args
from .loop import EvalResult, TrainingError, evaluate, train_one_epoch, train_step, warmup_cosine
from .trainer import EpochMetrics, RunExistsError, Trainer, finetune, show_log

__all__ = ["STRATEGIES", "EpochMetrics", "EvalResult", "RunExistsError", "TrainConfig", "Trainer", "TrainingError",
           "build_parser", "config_from_args", "evaluate", "finetune", "show_log", "train_one_epoch", "train_step",
           "warmup_cosine"]
