"""Progressive learning (EfficientNetV2, Tan & Le 2021, Algorithm 1): small images and weak
regularisation first, the target size and full regularisation at the end.

Training is cut into M stages of (nearly) equal length. In stage i of M the image size and the
regularisation strength are interpolated linearly between a start and an end value:

    size_i     = S_0 + (S_e − S_0) · i / (M − 1)
    strength_i = r_0 + (1 − r_0) · i / (M − 1)        (a share of the configured regularisation)

Small images early are cheap (a step costs ∝ size²) and, the paper argues, want weak
regularisation: a small network input carries less information, so strong augmentation and
dropout would underfit it. What the strength scales here: the classifier's dropout, the
RandAugment magnitude (with auto_augment="randaugment") or else the colour-jitter strength.
Mixup, which the paper also grows, is not implemented in this trainer.

The stage is a function of the epoch alone, so a run resumed from any epoch (across a stage
boundary too) sees the same sizes and strengths as one that was never interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_STAGES = 4  # the paper's M for ImageNet
DEFAULT_START_STRENGTH = 1 / 3  # Table 6, V2-S: dropout 0.1 → 0.3, RandAugment 5 → 15


@dataclass(frozen=True)
class ProgressiveStage:
    index: int  # 0 … M − 1
    first_epoch: int  # 0-based, inclusive
    last_epoch: int  # inclusive
    size: int  # training image size (square)
    strength: float  # share of the configured regularisation, in (0, 1]


def parse_sizes(text: str, end_default: int | None = None) -> tuple[int, int]:
    """"START:END" → (START, END). "auto" (or "auto:END") starts at half the end size, rounded
    down to a multiple of 8 when the end size is at least 64 (128 → 224, 144 → 288, 14 → 28)."""
    start_text, sep, end_text = str(text).partition(":")
    try:
        end = int(end_text) if sep else end_default
        if start_text == "auto":
            if end is None:
                raise ValueError
            start = end // 2 if end < 64 else end // 2 // 8 * 8
        else:
            start = int(start_text)
            if not sep:
                raise ValueError
    except ValueError:
        raise ValueError(f"progressive (--progressive) must be START:END image sizes such as 128:224, or auto, "
                         f"got {text!r}") from None
    if end is None or not 1 <= start <= end:
        raise ValueError(f"progressive (--progressive): need 1 <= START <= END, got {text!r}")
    return start, end


def progressive_schedule(epochs: int, stages: int, start_size: int, end_size: int,
                         start_strength: float = DEFAULT_START_STRENGTH) -> list[ProgressiveStage]:
    """The M stages of a run of `epochs` epochs (Algorithm 1, with epochs as the unit of steps).
    Stage i holds the epochs e with floor(e · M / epochs) = i."""
    if not 1 <= stages <= epochs:
        raise ValueError(f"progressive_stages (--progressive-stages) must be between 1 and the number of epochs "
                         f"({epochs}), got {stages}")
    if not 0 < start_strength <= 1:
        raise ValueError(f"progressive_reg (--progressive-reg) must be in (0, 1], got {start_strength}")
    out = []
    for i in range(stages):
        t = i / (stages - 1) if stages > 1 else 1.0
        epochs_in = [e for e in range(epochs) if e * stages // epochs == i]
        out.append(ProgressiveStage(i, epochs_in[0], epochs_in[-1], round(start_size + (end_size - start_size) * t),
                                    start_strength + (1 - start_strength) * t))
    return out


def stage_of(schedule: list[ProgressiveStage], epoch: int) -> ProgressiveStage:
    """The stage that trains 0-based `epoch`."""
    for stage in schedule:
        if stage.first_epoch <= epoch <= stage.last_epoch:
            return stage
    return schedule[-1]
