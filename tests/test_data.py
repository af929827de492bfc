"""Tests for effnet_lab.data (config, transforms, images), checked against timm, torchvision and PIL on photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import timm
import timm.data
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.models._meta import _IMAGENET_CATEGORIES

from effnet_lab.data.config import IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD, resolve_data_config
from effnet_lab.data.images import ImageLoadError, load_image
from effnet_lab.data.resources import imagenet_class_names
from effnet_lab.data.transforms import create_transform

IMAGES = Path(__file__).resolve().parents[1] / "data" / "images"
CHELSEA = IMAGES / "chelsea.png"


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(CHELSEA) as img:
        return img.convert("RGB")


@pytest.fixture(scope="module")
def timm_model() -> torch.nn.Module:
    # Only its pretrained_cfg is used; the smallest EfficientNet keeps creation fast.
    return timm.create_model("efficientnet_lite0", pretrained=False)


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


# -------- constants


def test_constants_match_timm() -> None:
    assert IMAGENET_MEAN == pytest.approx(timm.data.IMAGENET_DEFAULT_MEAN)
    assert IMAGENET_STD == pytest.approx(timm.data.IMAGENET_DEFAULT_STD)
    assert INCEPTION_MEAN == pytest.approx(timm.data.IMAGENET_INCEPTION_MEAN)
    assert INCEPTION_STD == pytest.approx(timm.data.IMAGENET_INCEPTION_STD)


# -------- resolve_data_config


def test_resolve_matches_timm_for_a_timm_model(timm_model: torch.nn.Module) -> None:
    expected = timm.data.resolve_data_config({}, model=timm_model)
    for ours in (
        resolve_data_config(timm_model),
        resolve_data_config({}, model=timm_model),
    ):
        assert set(ours) == {
            "input_size",
            "interpolation",
            "mean",
            "std",
            "crop_pct",
            "crop_mode",
        }
        assert ours["input_size"] == tuple(expected["input_size"])
        assert ours["interpolation"] == expected["interpolation"]
        assert ours["mean"] == pytest.approx(expected["mean"])
        assert ours["std"] == pytest.approx(expected["std"])
        assert ours["crop_pct"] == pytest.approx(expected["crop_pct"])
        assert ours["crop_mode"] == expected["crop_mode"]


def test_resolve_precedence_matches_timm(timm_model: torch.nn.Module) -> None:
    cfg = dict(
        timm_model.pretrained_cfg,
        input_size=(3, 260, 260),
        crop_pct=0.95,
        interpolation="bilinear",
    )
    args = {"crop_pct": 0.9, "mean": (0.5, 0.5, 0.5), "unrelated": 1}
    expected = timm.data.resolve_data_config(args, pretrained_cfg=cfg)
    ours = resolve_data_config(args, pretrained_cfg=cfg)
    assert ours["input_size"] == tuple(expected["input_size"]) == (3, 260, 260)
    assert ours["interpolation"] == expected["interpolation"] == "bilinear"
    assert ours["crop_pct"] == pytest.approx(expected["crop_pct"])
    assert ours["mean"] == pytest.approx(expected["mean"])
    # Keyword overrides beat args; img_size is shorthand for a square input_size.
    over = resolve_data_config(args, pretrained_cfg=cfg, crop_pct=1.0, img_size=288)
    assert over["crop_pct"] == 1.0 and over["input_size"] == (3, 288, 288)


def test_resolve_defaults_and_pretrained_cfg_only() -> None:
    assert resolve_data_config() == {
        "input_size": (3, 224, 224),
        "interpolation": "bicubic",
        "mean": pytest.approx(timm.data.IMAGENET_DEFAULT_MEAN),
        "std": pytest.approx(timm.data.IMAGENET_DEFAULT_STD),
        "crop_pct": pytest.approx(timm.data.DEFAULT_CROP_PCT),
        "crop_mode": "center",
    }
    cfg = {
        "input_size": (3, 240, 240),
        "crop_pct": 0.882,
        "label_names": ["a"],
        "num_classes": 1,
    }
    ours = resolve_data_config(pretrained_cfg=cfg)
    assert ours["input_size"] == (3, 240, 240) and ours["crop_pct"] == pytest.approx(0.882)


def test_resolve_uses_model_pretrained_cfg() -> None:
    model = torch.nn.Linear(2, 2)
    model.pretrained_cfg = {
        "input_size": (3, 300, 300),
        "mean": INCEPTION_MEAN,
        "std": INCEPTION_STD,
        "extra": 1,
    }
    ours = resolve_data_config(model)
    assert ours["input_size"] == (3, 300, 300)
    assert ours["mean"] == ours["std"] == (0.5, 0.5, 0.5)
    assert resolve_data_config(torch.nn.Linear(2, 2))["input_size"] == (
        3,
        224,
        224,
    )  # no cfg: defaults


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"interpolation": "cubic"}, "interpolation"),
        ({"crop_pct": 0.0}, "crop_pct"),
        ({"crop_pct": 1.5}, "crop_pct"),
        ({"mean": (0.5, 0.5)}, "mean"),
        ({"std": (0.5, 0.5, 0.5, 0.5)}, "std"),
        ({"std": 0.5}, "std"),
        ({"input_size": (1, 224, 224)}, "input_size"),
        ({"img_size": -3}, "img_size"),
    ],
)
def test_resolve_rejects_bad_values(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        resolve_data_config(**kwargs)
    with pytest.raises(ValueError, match=name):
        resolve_data_config(kwargs)  # the same value coming from args
    if "img_size" not in kwargs:
        with pytest.raises(ValueError, match=name):
            resolve_data_config(pretrained_cfg=kwargs)


def test_resolve_rejects_unknown_override() -> None:
    with pytest.raises(TypeError, match="crop_pc"):
        resolve_data_config(crop_pc=0.9)


# -------- create_transform: eval


EVAL_CONFIGS = [
    {"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bicubic"},
    {"input_size": (3, 288, 288), "crop_pct": 1.0, "interpolation": "bicubic"},
    {"input_size": (3, 300, 300), "crop_pct": 0.904, "interpolation": "bicubic"},
    {"input_size": (3, 240, 240), "crop_pct": 0.882, "interpolation": "bilinear"},
    {
        "input_size": (3, 224, 224),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": INCEPTION_MEAN,
        "std": INCEPTION_STD,
    },
    {
        "input_size": (3, 240, 320),
        "crop_pct": 0.9,
        "interpolation": "bicubic",
    },  # rectangular
    {
        "input_size": (3, 224, 224),
        "crop_pct": 0.95,
        "interpolation": "bicubic",
        "crop_mode": "squash",
    },
]


@pytest.mark.parametrize("cfg", EVAL_CONFIGS, ids=lambda c: f"{c['input_size'][1:]}-{c['crop_pct']}")
@pytest.mark.parametrize("image_name", ["chelsea.png", "rocket.jpg"])
def test_eval_transform_equals_timm(timm_model: torch.nn.Module, cfg: dict, image_name: str) -> None:
    # A stand-in module carrying a real timm pretrained_cfg updated with this config.
    holder = torch.nn.Identity()
    holder.pretrained_cfg = {**timm_model.pretrained_cfg, **cfg}
    with Image.open(IMAGES / image_name) as img:
        rgb = img.convert("RGB")
    images = [rgb, rgb.transpose(Image.Transpose.ROTATE_90)]  # landscape and portrait

    reference = timm.data.create_transform(**timm.data.resolve_data_config({}, model=holder))
    ours = create_transform(**resolve_data_config(holder))
    for img in images:
        expected, got = reference(img), ours(img)
        assert got.shape == expected.shape == (3, *cfg["input_size"][1:])
        assert torch.equal(got, expected) or (got - expected).abs().max().item() < 1e-6


def test_eval_transform_input_size_forms(photo: Image.Image) -> None:
    a = create_transform(224)(photo)
    assert torch.equal(a, create_transform((224, 224))(photo))
    assert torch.equal(a, create_transform((3, 224, 224))(photo))
    # Extra keys (e.g. a whole pretrained_cfg) are ignored.
    assert torch.equal(a, create_transform(224, num_classes=1000, url="x")(photo))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"interpolation": "cubic"}, "interpolation"),
        ({"crop_pct": 1.2}, "crop_pct"),
        ({"mean": (0.5,)}, "mean"),
        ({"input_size": (3, 224, 224, 1)}, "input_size"),
        ({"crop_mode": "border"}, "crop_mode"),
    ],
)
def test_create_transform_validates(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        create_transform(**kwargs)


# -------- create_transform: training


def test_training_transform_pipeline(photo: Image.Image) -> None:
    tf = create_transform(240, is_training=True, interpolation="bilinear", re_prob=0.25)
    kinds = [type(t) for t in tf.transforms]
    assert kinds == [
        T.RandomResizedCrop,
        T.RandomHorizontalFlip,
        T.ColorJitter,
        T.ToTensor,
        T.Normalize,
        T.RandomErasing,
    ]
    # the same defaults as timm's training transform
    theirs = {type(t).__name__: t for t in timm.data.create_transform(240, is_training=True).transforms}
    rrc, jitter = tf.transforms[0], tf.transforms[2]
    assert rrc.size == (240, 240) and rrc.scale == tuple(theirs["RandomResizedCropAndInterpolation"].scale)
    assert rrc.ratio == pytest.approx(theirs["RandomResizedCropAndInterpolation"].ratio)
    assert jitter.brightness == pytest.approx(theirs["ColorJitter"].brightness) and jitter.hue is None
    torch.manual_seed(0)
    a, b = tf(photo), tf(photo)
    assert a.shape == b.shape == (3, 240, 240)
    assert not torch.equal(a, b)  # random crops differ


def test_training_transform_options(photo: Image.Image) -> None:
    plain = create_transform(224, is_training=True, hflip=0.0, color_jitter=0.0)
    assert [type(t) for t in plain.transforms] == [
        T.RandomResizedCrop,
        T.ToTensor,
        T.Normalize,
    ]


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("randaugment", T.RandAugment),
        ("trivialaugment", T.TrivialAugmentWide),
        ("augmix", T.AugMix),
        ("autoaugment", T.AutoAugment),
    ],
)
def test_auto_augment(photo: Image.Image, name: str, cls: type) -> None:
    tf = create_transform(128, is_training=True, auto_augment=name)
    kinds = [type(t) for t in tf.transforms]
    assert cls in kinds and T.ColorJitter not in kinds  # auto-augment replaces colour jitter
    torch.manual_seed(0)
    assert tf(photo).shape == (3, 128, 128)


def test_auto_augment_unknown_name() -> None:
    with pytest.raises(ValueError, match="auto_augment"):
        create_transform(224, is_training=True, auto_augment="rand-m9-mstd0.5")


# -------- load_image


def test_load_paths_and_pil(photo: Image.Image) -> None:
    for source in (CHELSEA, str(CHELSEA)):
        img = load_image(source)
        assert img.mode == "RGB" and np.array_equal(_arr(img), _arr(photo))
    with open(CHELSEA, "rb") as fh:
        assert np.array_equal(_arr(load_image(fh)), _arr(photo))
    rocket = load_image(IMAGES / "rocket.jpg")
    assert rocket.mode == "RGB" and rocket.size == (640, 427)


def test_load_grayscale(tmp_path: Path, photo: Image.Image) -> None:
    gray = photo.convert("L")
    gray.save(tmp_path / "gray.png")
    img = load_image(tmp_path / "gray.png")
    assert img.mode == "RGB"
    assert np.array_equal(_arr(img), np.stack([_arr(gray)] * 3, axis=-1))


def test_load_bilevel(tmp_path: Path, photo: Image.Image) -> None:
    bw = photo.convert("1")
    bw.save(tmp_path / "bw.png")
    img = _arr(load_image(tmp_path / "bw.png"))
    assert set(np.unique(img)) <= {0, 255}
    assert np.array_equal(img[..., 0], _arr(bw.convert("L")))


def _transparent_box(size: tuple[int, int]) -> tuple[np.ndarray, tuple[slice, slice]]:
    w, h = size
    alpha = np.full((h, w), 255, np.uint8)
    box = (slice(h // 4, h // 2), slice(w // 4, w // 2))
    alpha[box] = 0
    return alpha, box


def test_load_rgba_composites_on_white(tmp_path: Path, photo: Image.Image) -> None:
    alpha, box = _transparent_box(photo.size)
    half = (slice(0, 20), slice(0, 20))
    alpha[half] = 128
    rgba = photo.copy()
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "rgba.png")
    img = _arr(load_image(tmp_path / "rgba.png"))
    assert (img[box] == 255).all()  # transparent -> white, not the hidden colour
    opaque = alpha == 255
    assert np.array_equal(img[opaque], _arr(photo)[opaque])
    expected_half = _arr(photo)[half] * (128 / 255) + 255 * (127 / 255)
    assert np.abs(img[half] - expected_half).max() <= 1


def test_load_la(tmp_path: Path, photo: Image.Image) -> None:
    gray = photo.convert("L")
    alpha, box = _transparent_box(photo.size)
    la = Image.merge("LA", (gray, Image.fromarray(alpha)))
    la.save(tmp_path / "la.png")
    assert Image.open(tmp_path / "la.png").mode == "LA"
    img = _arr(load_image(tmp_path / "la.png"))
    assert (img[box] == 255).all()
    opaque = alpha == 255
    assert np.array_equal(img[..., 1][opaque], _arr(gray)[opaque])


def test_load_palette(tmp_path: Path, photo: Image.Image) -> None:
    pal = photo.quantize(64)
    pal.save(tmp_path / "pal.png")
    img = load_image(tmp_path / "pal.png")
    assert np.array_equal(_arr(img), _arr(pal.convert("RGB")))
    assert np.abs(_arr(img) - _arr(photo)).mean() < 10  # still the photo


def test_load_palette_with_transparency(tmp_path: Path, photo: Image.Image) -> None:
    pal = photo.quantize(64)
    index = np.asarray(pal)
    see_through = int(index[0, 0])
    pal.save(tmp_path / "pal_t.png", transparency=see_through)
    assert "transparency" in Image.open(tmp_path / "pal_t.png").info
    img = _arr(load_image(tmp_path / "pal_t.png"))
    hidden = index == see_through
    assert hidden.any() and (img[hidden] == 255).all()
    assert np.array_equal(img[~hidden], _arr(pal.convert("RGB"))[~hidden])


def test_load_16bit_grayscale_png(tmp_path: Path, photo: Image.Image) -> None:
    gray = _arr(photo.convert("L"))
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    opened = Image.open(tmp_path / "g16.png")
    assert opened.mode.startswith("I")
    # The bug being avoided: PIL's own conversion clips 16-bit values to white.
    assert (np.asarray(opened.convert("RGB")) == 255).mean() > 0.9
    img = _arr(load_image(tmp_path / "g16.png"))
    assert np.abs(img - gray[..., None]).max() <= 1


def test_load_16bit_big_endian_and_32bit_and_float(photo: Image.Image) -> None:
    gray = _arr(photo.convert("L"))
    w, h = photo.size
    big = Image.frombytes("I;16B", (w, h), (gray.astype(">u2") * 257).tobytes())
    wide = Image.fromarray(gray.astype(np.int32) * 257, mode="I")
    floats = Image.fromarray(gray.astype(np.float32) / 255.0, mode="F")
    for source in (big, wide, floats):
        img = _arr(load_image(source))
        assert np.abs(img - gray[..., None]).max() <= 1, source.mode


def test_load_cmyk_jpeg(tmp_path: Path, photo: Image.Image) -> None:
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    img = _arr(load_image(tmp_path / "cmyk.jpg"))
    assert np.array_equal(img, _arr(Image.open(tmp_path / "cmyk.jpg").convert("RGB")))
    assert np.abs(img - _arr(photo)).mean() < 4  # colours survive (not inverted)


@pytest.mark.parametrize(("tag", "turn"), [(6, Image.Transpose.ROTATE_270), (8, Image.Transpose.ROTATE_90)])
def test_load_exif_orientation(tmp_path: Path, photo: Image.Image, tag: int, turn: Image.Transpose) -> None:
    exif = Image.Exif()
    exif[0x0112] = tag  # Orientation
    path = tmp_path / f"exif{tag}.jpg"
    photo.save(path, quality=95, exif=exif)
    img = load_image(path)
    assert img.size == photo.size[::-1]
    with Image.open(path) as raw:
        assert raw.size == photo.size  # stored sideways; only the tag says to turn it
        assert np.array_equal(_arr(img), _arr(raw.convert("RGB").transpose(turn)))
    assert np.abs(_arr(img) - _arr(photo.transpose(turn))).mean() < 3


def test_load_does_not_modify_pil_input(photo: Image.Image) -> None:
    rgba = photo.convert("RGBA")
    out = load_image(rgba)
    assert rgba.mode == "RGBA" and out.mode == "RGB" and out is not rgba


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_truncated_file_fails_at_load_time(tmp_path: Path, photo: Image.Image, suffix: str) -> None:
    buf = io.BytesIO()
    photo.save(buf, format="JPEG" if suffix == "jpg" else "PNG")
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    Image.open(path)  # PIL alone accepts the header; the damage only shows on decode
    with pytest.raises(ImageLoadError, match=f"cut.{suffix}"):
        load_image(path)
    with pytest.raises(ImageLoadError):
        load_image(Image.open(path))  # a lazily opened PIL image too


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")
    with pytest.raises(ImageLoadError, match="notes.jpg") as info:
        load_image(path)
    assert isinstance(info.value, ValueError)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="nothing_here.png"):
        load_image(tmp_path / "nothing_here.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


# -------- class names


def test_imagenet_class_names() -> None:
    names = imagenet_class_names()
    assert names == list(_IMAGENET_CATEGORIES)
    names[0] = "changed"
    assert imagenet_class_names()[0] == _IMAGENET_CATEGORIES[0]  # the cache is not shared
