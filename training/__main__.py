"""python -m training train|evaluate ..."""

import argparse
import json
import sys
from pathlib import Path

from classifier import DEFAULT_BUNDLE
from training.data import ManifestError, read_manifest
from training.loop import TrainConfig, fit


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def format_report(report: dict) -> str:
    lines = [f"n={report['n']} accuracy={report['accuracy']:.3f} macro_auc={report['macro_auc']}"]
    lines.append(f"{'class':<22}{'n':>5}{'sens':>8}{'spec':>8}{'ppv':>8}{'auc':>8}")
    fmt = lambda v: f"{v:8.3f}" if v is not None else f"{'-':>8}"  # noqa: E731
    for name, m in report["per_class"].items():
        lines.append(
            f"{name:<22}{m['n']:>5}"
            + "".join(fmt(m[k]) for k in ("sensitivity", "specificity", "ppv", "auc"))
        )
    for source, sub in report.get("per_source", {}).items():
        lines.append(f"  source {source:<12} n={sub['n']:<5} accuracy={sub['accuracy']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a bundle from manifest CSV(s)")
    train.add_argument("--manifest", type=Path, action="append", required=True)
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--arch", type=_csv, default=["mobilenet_v2", "vgg11_bn"])
    train.add_argument(
        "--epochs",
        type=lambda v: [int(x) for x in _csv(v)],
        default=[12],
        help="one value for all members or one per member",
    )
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--input-size", type=int, default=224)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    train.add_argument("--init", default=None, help="torchvision weights name or a local .pth")
    train.add_argument("--no-augment", action="store_true")
    ev = sub.add_parser("evaluate", help="evaluate a bundle on a manifest")
    ev.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    ev.add_argument("--manifest", type=Path, required=True)
    ev.add_argument("--json", type=Path)
    ev.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            records = [r for m in args.manifest for r in read_manifest(m)]
            epochs = args.epochs * len(args.arch) if len(args.epochs) == 1 else args.epochs
            cfg = TrainConfig(
                archs=args.arch,
                epochs=epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                input_size=args.input_size,
                seed=args.seed,
                device=args.device,
                precision=args.precision,
                init=args.init,
                augment=not args.no_augment,
            )
            sources = [{"manifest": str(m)} for m in args.manifest]
            meta = fit(records, args.out, cfg, data_sources=sources)
            print(format_report(meta.metrics["ensemble"]))
            print(f"wrote {args.out}")
        else:
            from training.evaluate import evaluate_bundle

            report = evaluate_bundle(args.bundle, read_manifest(args.manifest), device=args.device)
            print(format_report(report))
            if args.json:
                args.json.write_text(json.dumps(report, indent=2))
    except (ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
