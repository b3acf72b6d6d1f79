"""Benchmark: ensemble prediction + Grad-CAM, seven ways, measured in one run on the same images.

    python -m classifier.bench [--image-dir DIR] [--images 32] [--json out.json] [--batch 8]
                               [--device cpu|cuda]
                               [--bundle PATH | --arch mobilenet_v2,vgg16]

(a) naive: fp32, default memory layout, predict, then pytorch-grad-cam ``GradCAM`` per member
    (its own forward pass and a full backward pass);
(b) ``Predictor.predict`` with CAM (one forward pass, backward through the head only);
(c) ``Predictor.predict(cam=False)``;
(d) (b) with test-time augmentation (the input and two zooms of it), so d/b is what TTA costs.
(b) is the product's path: it includes the lung mask and the CAM lung fraction when the bundle
has a segmenter (random members get a random U-Net) and the "not assessable" gate (the
deterministic checks, and the gate network and feature distance when the bundle has a gate;
random members get a random one). (b°) is (b) without the gate, so b/b° is what the gate
costs; (b-) is (b°) without the mask, so b°/b- is what the mask costs; (c) is the members'
forward pass alone, no mask, no gate.
A second naive run with channels_last layout (a') is reported too, so the ratio is not only
against the slowest baseline. Ratios divide time per image of the first variant by the second.
"""

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from classifier import DEFAULT_BUNDLE, DEFAULT_CLASSES
from classifier.bundle import Gate, load_bundle_members, load_gate, load_segmenter
from classifier.device import cpu_name, machine, resolve_device
from classifier.ensemble import Member
from classifier.gate import FeatureDistance, GateSpec, gate_net
from classifier.metadata import BundleMetadata, MemberSpec
from classifier.networks import build_member
from classifier.predictor import Predictor
from classifier.segmentation import SegmenterSpec, unet

CLASSES = list(DEFAULT_CLASSES)
# The test-time augmentation measured against its cost: two zooms besides the input.
TTA = (0.92, 1.08)


def _members(args) -> tuple[BundleMetadata, dict[str, torch.nn.Module], tuple | None, Gate]:
    if args.arch:
        torch.manual_seed(0)
        specs = [MemberSpec(name=arch, arch=arch) for arch in args.arch]
        meta = BundleMetadata(classes=CLASSES, members=specs, input_size=args.input_size)
        models = {s.name: build_member(s.arch, len(CLASSES)).eval() for s in specs}
        return meta, models, (SegmenterSpec(), unet().eval()), _random_gate(meta, models)
    meta, models = load_bundle_members(args.bundle)
    gate = load_gate(args.bundle) or _random_gate(meta, models)
    return meta, models, load_segmenter(args.bundle), gate


def _random_gate(meta, models) -> Gate:
    """A gate of the shipped shape with random weights, for members that have none."""
    probe = torch.zeros(1, 3, meta.input_size, meta.input_size)
    with torch.no_grad():
        dim = sum(
            Member.wrap(s.name, s.arch, models[s.name]).body(probe).shape[1] for s in meta.members
        )
    spec = GateSpec()
    return Gate(spec, gate_net(spec).eval(), FeatureDistance(dim, min(128, dim - 1)).eval())


def make_predictor(meta, models, device, segmenter=None, gate=None, **options) -> Predictor:
    # Each variant gets its own copy of the weights so layout changes do not leak between them.
    members = [
        Member.wrap(s.name, s.arch, _copy(models[s.name]), s.weight, s.temperature)
        for s in meta.members
    ]
    if segmenter is not None:
        segmenter = (segmenter[0], _copy(segmenter[1]))
    if gate is not None:
        gate = Gate(gate.spec, _copy(gate.net), gate.distance and _copy(gate.distance))
    return Predictor(
        meta,
        members,
        device=device,
        segmenter=segmenter,
        gate=gate,
        checks=gate is not None,
        **options,
    )


def _copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model).float()


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def load_images(count: int, size: int, folder: Path | None) -> list[Image.Image | np.ndarray]:
    """``count`` films from ``folder`` (JPEG or PNG, by name), made up to ``count`` with
    synthetic images of the bundle's input size when it holds fewer or none is given."""
    paths = (
        sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
        if folder is not None
        else []
    )
    images: list = [Image.open(p).convert("L") for p in paths]
    rng = np.random.default_rng(0)
    while len(images) < count:
        images.append(rng.random((size, size), dtype=np.float32))
    return images


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_image(fns: dict, images, device, repeats: int) -> dict[str, float]:
    """Median seconds per image of each function. The repeats go round the variants in turn,
    so that a machine whose speed drifts (shared VMs do) slows every variant alike."""
    for fn in fns.values():
        fn(images[: max(1, len(images) // 4)])  # warm-up: lazy init, oneDNN primitive caches
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn(images)
            _sync(device)
            times[name].append((time.perf_counter() - start) / len(images))
    return {name: statistics.median(values) for name, values in times.items()}


def gflop_per_image(meta, models, size: int) -> float:
    x = torch.randn(1, 3, size, size)
    total = 0
    for spec in meta.members:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            models[spec.name].eval()(x)
        total += counter.get_total_flops()
    return total / 1e9


def segmenter_gflop_per_image(segmenter) -> float:
    if segmenter is None:
        return 0.0
    spec, net = segmenter
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()(torch.randn(1, 1, spec.input_size, spec.input_size))
    return counter.get_total_flops() / 1e9


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 10):
    """The matmul ceiling in the precision the Predictor uses (bf16 only where it is native:
    emulated bf16 matmuls on CPUs without avx512_bf16/AMX take minutes and measure nothing)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def run(args) -> dict:
    device = resolve_device(args.device)
    meta, models, segmenter, gate = _members(args)
    if args.image_dir is not None and not args.image_dir.is_dir():
        raise SystemExit(f"--image-dir {args.image_dir}: not a folder")
    images = load_images(args.images, meta.input_size, args.image_dir)
    common = {"device": device, "batch_size": args.batch}
    variants = {
        "naive": make_predictor(
            meta,
            models,
            precision="fp32",
            cam_engine="pytorch-grad-cam",
            channels_last=False,
            **common,
        ),
        "naive_channels_last": make_predictor(
            meta, models, precision="fp32", cam_engine="pytorch-grad-cam", **common
        ),
        "cam": make_predictor(
            meta, models, precision=args.precision, segmenter=segmenter, gate=gate, **common
        ),
        "cam_no_gate": make_predictor(
            meta, models, precision=args.precision, segmenter=segmenter, **common
        ),
        "cam_no_lungs": make_predictor(meta, models, precision=args.precision, **common),
        "cam_tta": make_predictor(
            meta,
            models,
            precision=args.precision,
            segmenter=segmenter,
            gate=gate,
            tta=TTA,
            **common,
        ),
    }
    fns = {
        "naive": variants["naive"].predict,
        "naive_channels_last": variants["naive_channels_last"].predict,
        "cam": variants["cam"].predict,
        "cam_no_gate": variants["cam_no_gate"].predict,
        "cam_no_lungs": variants["cam_no_lungs"].predict,
        "forward": lambda batch: variants["cam_no_lungs"].predict(batch, cam=False),
        "cam_tta": variants["cam_tta"].predict,
    }
    seconds = time_per_image(fns, images, device, args.repeats)
    gflop = gflop_per_image(meta, models, meta.input_size)
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "machine": machine(),
        "batch": args.batch,
        "naive_ips": 1 / seconds["naive"],
        "cam_ips": 1 / seconds["cam"],
        "forward_ips": 1 / seconds["forward"],
        "a_over_b": seconds["naive"] / seconds["cam"],
        "b_over_c": seconds["cam"] / seconds["forward"],
        "lungs": segmenter is not None,
        "segmenter_gflop_per_image": segmenter_gflop_per_image(segmenter),
        "cam_no_lungs_ips": 1 / seconds["cam_no_lungs"],
        "b_over_b_no_lungs": seconds["cam"] / seconds["cam_no_lungs"],
        "gate": "bundle" if not args.arch and load_gate(args.bundle) else "random",
        "cam_no_gate_ips": 1 / seconds["cam_no_gate"],
        "b_over_b_no_gate": seconds["cam"] / seconds["cam_no_gate"],
        "b_no_gate_over_b_no_lungs": seconds["cam_no_gate"] / seconds["cam_no_lungs"],
        "tta": list(TTA),
        "cam_tta_ips": 1 / seconds["cam_tta"],
        "tta_over_b": seconds["cam_tta"] / seconds["cam"],
        "gflop_per_image": gflop,
        "achieved_gflops": gflop / seconds["cam"],
        "matmul_gflops": matmul_gflops(
            device, torch.bfloat16 if variants["cam"].bf16 else torch.float32
        ),
        "matmul_dtype": "bf16" if variants["cam"].bf16 else "fp32",
        "naive_channels_last_ips": 1 / seconds["naive_channels_last"],
        "a_channels_last_over_b": seconds["naive_channels_last"] / seconds["cam"],
        "achieved_gflops_forward": gflop / seconds["forward"],
        "bf16": variants["cam"].bf16,
        "members": [f"{s.name}:{s.arch}" for s in meta.members],
        "weights": "random" if args.arch else str(args.bundle),
        "input_size": meta.input_size,
        "images": len(images),
        "image_dir": str(args.image_dir) if args.image_dir is not None else None,
        "synthetic_images": sum(isinstance(image, np.ndarray) for image in images),
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def format_table(r: dict) -> str:
    rows = [
        ("(a) naive: fp32 predict + pytorch-grad-cam", r["naive_ips"]),
        ("(a') naive, channels_last", r["naive_channels_last_ips"]),
        (
            f"(b) Predictor.predict, CAM{' + lung mask' if r.get('lungs') else ''} + gate",
            r["cam_ips"],
        ),
        ("(b°) (b) without the gate", r["cam_no_gate_ips"]),
        ("(b-) (b°) without the lung mask", r["cam_no_lungs_ips"]),
        ("(c) Predictor.predict(cam=False)", r["forward_ips"]),
        (f"(d) (b) with test-time zooms {r['tta']}", r["cam_tta_ips"]),
    ]
    lines = [
        f"device {r['device']} ({r['device_name']}), batch {r['batch']}, "
        f"{r['images']} images, members {', '.join(r['members'])}, "
        f"{r['weights']} weights, bf16 {r['bf16']}, {r['threads']} threads"
    ]
    lines += [f"{'variant':<44}{'images/s':>10}{'s/image':>10}"]
    lines += [f"{name:<44}{ips:>10.2f}{1 / ips:>10.3f}" for name, ips in rows]
    lines += [
        f"a/b = {r['a_over_b']:.2f}   a'/b = {r['a_channels_last_over_b']:.2f}   "
        f"b/c = {r['b_over_c']:.3f}   b/b- = {r['b_over_b_no_lungs']:.3f}   "
        f"d/b = {r['tta_over_b']:.2f}",
        f"gate ({r['gate']} weights): b/b° = {r['b_over_b_no_gate']:.3f}   "
        f"mask: b°/b- = {r['b_no_gate_over_b_no_lungs']:.3f}",
        f"ensemble {r['gflop_per_image']:.2f} GFLOP/image (+ lung U-Net "
        f"{r['segmenter_gflop_per_image']:.2f}); achieved {r['achieved_gflops']:.0f} "
        f"GFLOP/s with CAM, {r['achieved_gflops_forward']:.0f} forward only; {r['matmul_dtype']} "
        f"matmul ceiling {r['matmul_gflops']:.0f} GFLOP/s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifier.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument(
        "--arch",
        type=lambda v: [a for a in v.split(",") if a],
        default=None,
        help="random-weight members instead of a bundle, e.g. mobilenet_v2,vgg16",
    )
    parser.add_argument("--input-size", type=int, default=224, help="with --arch")
    parser.add_argument("--images", type=int, default=32, help="how many films to time")
    parser.add_argument(
        "--image-dir",
        type=Path,
        help="the films to time (JPEG or PNG), e.g. tests/data/cxr_sample/images; "
        "synthetic images of the input size without it",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args(argv)
    result = run(args)
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
