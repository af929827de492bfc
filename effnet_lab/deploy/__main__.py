"""`python -m effnet_lab.deploy`: export a model to ONNX, optionally quantize it to int8, and check
both against the eager model on a few images."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..train.config import OneLineParser


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m effnet_lab.deploy", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a registered name (python -c 'import effnet_lab as e; "
                   "print(e.list_models())')")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--pretrained", action="store_true", help="the published ImageNet weights")
    src.add_argument("--checkpoint", type=Path, help="a state dict or training checkpoint (e.g. best.pth)")
    p.add_argument("--onnx", type=Path, required=True, help="the ONNX file to write")
    p.add_argument("--batch", default="dynamic", help="'dynamic' (default) or a fixed batch size")
    p.add_argument("--size", choices=("auto", "dynamic", "static"), default="auto",
                   help="dynamic or static height/width (auto: static only for TF 'same' padding)")
    p.add_argument("--int8", action="store_true", help="also write an int8 file (OUT.int8.onnx)")
    p.add_argument("--calibration", type=Path, help="folder of images to calibrate int8 on (needed with --int8)")
    p.add_argument("--float-until", metavar="MODULE", help="keep the network in fp32 up to and including this "
                   "module (stem, stages.0, stages.1, …); int8 after it")
    p.add_argument("--check", nargs="+", type=Path, default=[], metavar="IMAGE",
                   help="images to compare eager, exported and int8 outputs on")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    batch = args.batch if args.batch == "dynamic" else (int(args.batch) if args.batch.isdigit() else None)
    if batch is None or batch == 0:
        parser.error(f"--batch must be 'dynamic' or a positive integer, not {args.batch!r}")
    if args.int8 and args.calibration is None:
        parser.error("--int8 needs --calibration DIR (a folder of images like the ones the model will see)")
    for name in ("calibration", "float_until"):
        if getattr(args, name) is not None and not args.int8:
            parser.error(f"--{name.replace('_', '-')} is only used with --int8")
    int8_path = args.onnx.with_suffix(".int8.onnx")
    try:
        from . import require_deploy_extra

        require_deploy_extra()
        from ..model.registry import create_model, list_models
        from .check import agreement, load_check_images
        from .export import export_onnx
        from .files import check_output
        from .quantize import calibration_images, quantize_int8
        from .runtime import load_onnx

        if args.model not in list_models():
            raise ValueError(f"--model {args.model!r} is not registered; choose one of {', '.join(list_models())}")
        # Every input is checked before the slow export starts.
        check_output(args.onnx, args.overwrite, "--onnx")
        if args.int8:
            check_output(int8_path, args.overwrite, "int8 output")
            calibration_images(args.calibration)
        images = load_check_images(args.check)
        model = create_model(args.model, pretrained=args.pretrained, checkpoint_path=args.checkpoint).eval()
        if args.float_until and args.float_until not in dict(model.named_modules()):
            raise ValueError(f"--float-until {args.float_until!r} is not a module of {args.model} "
                             f"(try stem, stages.0, stages.1, …)")
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        export_onnx(model, args.onnx, batch=batch, size=args.size, overwrite=args.overwrite)
        files = [("fp32", args.onnx, load_onnx(args.onnx))]
        if args.int8:
            quantize_int8(args.onnx, int8_path, args.calibration, float_until=args.float_until,
                          overwrite=args.overwrite)
            files.append(("int8", int8_path, load_onnx(int8_path)))
    except (ValueError, TypeError, ImportError, OSError) as e:
        print("error: " + " ".join(line.strip() for line in str(e).splitlines() if line.strip()), file=sys.stderr)
        return 1
    for kind, path, runtime in files:
        line = f"{kind}: {path} ({path.stat().st_size / 1e6:.1f} MB)"
        if images:
            a = agreement(model, runtime, images)
            line += (f"; top-1 agrees with eager on {a.top1_same}/{a.count} images, "
                     f"max |logit difference| {a.max_abs_diff:.2e}")
            if a.top1_same < a.count:
                line += f" (the flips: eager's top-1 led by at most {a.worst_flip_margin:.2f} in probability)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
