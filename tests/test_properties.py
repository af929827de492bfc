"""Property-based tests (hypothesis) of the pure parts: channel and repeat rounding, the cost
model against built models and torch's FLOP counter, image decoding, checkpoint layouts."""

from __future__ import annotations

import io

import pytest
import torch
from conftest import build_on_meta, meta_macs
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from effnet_lab.data.images import ImageLoadError, load_image
from effnet_lab.model.network import EfficientNet
from effnet_lab.paper.architecture import EfficientNetConfig, StageSpec
from effnet_lab.paper.cost import count_cost
from effnet_lab.paper.scaling import round_channels, round_repeats
from effnet_lab.weights.checkpoint import CheckpointError
from effnet_lab.weights.layouts import LAYOUTS, export_state_dict, load_weights

SLOW = settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------ rounding
@given(st.integers(1, 4096), st.floats(0.05, 4.0), st.sampled_from([1, 2, 4, 8, 16]))
def test_round_channels_is_a_multiple_never_below_90_percent(channels, width, divisor):
    target = channels * width
    got = round_channels(channels, width, divisor)
    assert got % divisor == 0 and got >= divisor
    assert got >= 0.9 * target
    assert got <= max(divisor, target + divisor)  # rounds, it does not inflate


@given(st.integers(1, 4096), st.floats(0.05, 4.0), st.floats(0.05, 4.0), st.sampled_from([1, 4, 8]))
def test_round_channels_is_monotone_in_the_multiplier(channels, w1, w2, divisor):
    lo, hi = sorted((w1, w2))
    assert round_channels(channels, lo, divisor) <= round_channels(channels, hi, divisor)


@given(st.integers(1, 30), st.floats(0.1, 5.0), st.floats(0.1, 5.0))
def test_round_repeats_ceils_and_is_monotone(repeats, d1, d2):
    lo, hi = sorted((d1, d2))
    assert round_repeats(repeats, lo) <= round_repeats(repeats, hi)
    assert round_repeats(repeats, lo) >= repeats * lo - 1e-9
    assert round_repeats(repeats, 1.0) == repeats


# ------------------------------------------------------------------------------ the cost model
stage = st.builds(
    StageSpec,
    block=st.sampled_from(["mbconv", "fused"]),
    kernel=st.sampled_from([3, 5]),
    stride=st.sampled_from([1, 2]),
    expand=st.sampled_from([1, 4, 6]),
    channels=st.integers(4, 48),
    repeats=st.integers(1, 3),
    se=st.sampled_from([0.0, 0.25]),
    skip=st.booleans(),
)
config = st.builds(
    EfficientNetConfig,
    stages=st.lists(stage, min_size=1, max_size=4).map(tuple),
    width=st.floats(0.25, 1.5),
    depth=st.floats(0.5, 2.0),
    stem_channels=st.integers(8, 40),
    head_channels=st.integers(16, 320),
)


@SLOW
@given(config, st.integers(17, 96), st.sampled_from([0, 10, 1000]))
def test_cost_model_equals_the_built_model_and_torchs_flop_counter(cfg, resolution, classes):
    """Random stage tables (both block kinds, expand 1 included): analytic params equal the built
    model's, analytic MACs equal FlopCounterMode's / 2 (FLOPs count a multiply and an add)."""
    model = build_on_meta(cfg, num_classes=classes)
    report = count_cost(cfg, resolution, num_classes=classes)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert report.macs == meta_macs(model, resolution)


# ------------------------------------------------------------------------------ image decoding
MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I;16", "I", "F", "YCbCr"]
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}


@SLOW
@given(st.sampled_from(MODES), st.sampled_from(sorted(FORMATS)), st.integers(1, 40), st.integers(1, 40),
       st.integers(1, 8), st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_any_image_pillow_writes_decodes_to_rgb_of_the_right_size_or_names_the_file(
        tmp_path_factory, mode, fmt, width, height, orientation, seed, cut):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=g).numpy()
    image = Image.fromarray(pixels, "RGB")
    try:
        image = image.convert(mode)
    except ValueError:
        assume(False)  # a conversion Pillow does not offer
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF Orientation: 5-8 swap width and height
    try:
        image.save(buffer, fmt, exif=exif.tobytes()) if fmt in ("JPEG", "TIFF", "WEBP", "PNG") else \
            image.save(buffer, fmt)
    except (OSError, ValueError, KeyError, TypeError):
        assume(False)  # a mode this format cannot store
    data = buffer.getvalue()
    path = tmp_path_factory.mktemp("img") / f"photo{FORMATS[fmt]}"
    truncated = cut < 0.3  # a third of the cases: the file cut short somewhere
    path.write_bytes(data[: max(1, int(len(data) * cut))] if truncated else data)

    with Image.open(io.BytesIO(data)) as reference:
        stored = reference.getexif().get(0x0112, 1)
    swapped = stored in (5, 6, 7, 8)
    try:
        rgb = load_image(path)
    except ImageLoadError as e:
        assert str(path) in str(e)
        assert truncated, f"an intact {fmt} {mode} image was refused: {e}"
        return
    assert rgb.mode == "RGB"
    assert rgb.size == ((height, width) if swapped else (width, height))


# ------------------------------------------------------------------------------ checkpoint layouts
@pytest.fixture(scope="module")
def small_model() -> EfficientNet:
    torch.manual_seed(0)
    cfg = EfficientNetConfig(width=0.25, depth=0.25, head_channels=64)
    return EfficientNet(cfg, num_classes=5).eval()


@settings(deadline=None, max_examples=40)
@given(st.sampled_from(LAYOUTS), st.sampled_from(["none", "drop", "rename", "reshape"]), st.data())
def test_layout_detection_loads_exactly_or_names_the_keys(small_model, layout, change, data):
    sd = export_state_dict(small_model, layout) if layout != "effnet_lab" else dict(small_model.state_dict())
    keys = sorted(sd)
    key = data.draw(st.sampled_from([k for k in keys if not k.endswith("num_batches_tracked")]))
    if change == "drop":
        del sd[key]
    elif change == "rename":
        sd[key + "_renamed"] = sd.pop(key)
    elif change == "reshape":
        sd[key] = sd[key].reshape(-1)[:-1] if sd[key].numel() > 1 else torch.zeros(2)
    target = EfficientNet(small_model.config, num_classes=5)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    if change == "none":
        load_weights(target, sd)
        ours = small_model.state_dict()
        assert all(torch.equal(ours[k], v) for k, v in target.state_dict().items())
        return
    with pytest.raises(CheckpointError) as refused:
        load_weights(target, sd)
    assert key in str(refused.value)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # nothing half-loaded
