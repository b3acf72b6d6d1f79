"""python -m training train|evaluate|import ..."""

import argparse
import json
import sys
from pathlib import Path

from classifier import DEFAULT_BUNDLE
from training.config import BALANCES, STRATEGIES, TrainConfig
from training.data import ManifestError, read_manifest, write_manifest


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _fmt(value) -> str:
    return f"{value:8.3f}" if isinstance(value, float) else f"{'-':>8}"


def format_report(report: dict) -> str:
    lines = [
        f"n={report['n']} accuracy={report['accuracy']:.3f} "
        f"macro_auc={_fmt(report['macro_auc']).strip()} ece={_fmt(report['ece']).strip()}"
    ]
    lines.append(
        f"{'class':<22}{'n':>5}{'sens':>8}{'spec':>8}{'ppv':>8}{'f1':>8}{'auc':>8}  auc 95% CI"
    )
    for name, m in report["per_class"].items():
        ci = "–" if m["auc_ci"] is None else f"{m['auc_ci'][0]:.3f}–{m['auc_ci'][1]:.3f}"
        lines.append(
            f"{name:<22}{m['n']:>5}"
            + "".join(_fmt(m[k]) for k in ("sensitivity", "specificity", "ppv", "f1", "auc"))
            + f"  {ci}"
        )
    cvr = report.get("covid_vs_rest")
    if cvr:
        lines.append(
            "covid19 vs rest: " + ", ".join(f"{k} {_fmt(v).strip()}" for k, v in cvr.items())
        )
    for source, sub in report.get("per_source", {}).items():
        lines.append(
            f"  source {source:<12} n={sub['n']:<5} accuracy={sub['accuracy']:.3f} "
            f"macro_auc={_fmt(sub['macro_auc']).strip()}"
        )
    return "\n".join(lines)


def _train_parser(sub) -> None:
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
    train.add_argument("--strategy", choices=STRATEGIES, default="finetune")
    train.add_argument(
        "--freeze-layers",
        type=int,
        default=0,
        help="with --strategy freeze: how many feature blocks to freeze",
    )
    train.add_argument(
        "--init",
        default=None,
        help="torchvision weights name, a local .pth, or a bundle to start from",
    )
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--patience", type=int, default=6)
    train.add_argument("--input-size", type=int, default=224)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--balance", choices=BALANCES, default="loss")
    train.add_argument(
        "--source-power",
        type=float,
        default=0.5,
        help="with --balance source: 0 = class balance only, 1 = sources equal within a class",
    )
    train.add_argument("--hflip", action="store_true", help="add horizontal flips (off: anatomy)")
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--no-calibrate", action="store_true")
    train.add_argument(
        "--covid-sensitivity",
        type=float,
        default=0.95,
        help="fit a covid19 threshold for this validation sensitivity; 0: argmax",
    )
    train.add_argument("--device", default="auto")
    train.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    ev = sub.add_parser("evaluate", help="evaluate a bundle on a manifest")
    ev.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    ev.add_argument("--manifest", type=Path, required=True)
    ev.add_argument("--json", type=Path)
    ev.add_argument("--plots", type=Path, help="folder for confusion/ROC/reliability PNGs")
    ev.add_argument("--device", default=None)
    cal = sub.add_parser("calibrate", help="refit a bundle's calibration and thresholds")
    cal.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    cal.add_argument(
        "--manifest",
        type=Path,
        action="append",
        required=True,
        help="the manifest(s) the bundle was trained on",
    )
    cal.add_argument("--out", type=Path, help="default: overwrite --bundle")
    cal.add_argument("--covid-sensitivity", type=float, default=None)
    cal.add_argument("--covid-min-specificity", type=float, default=None)
    card = sub.add_parser("card", help="print a Markdown model card from a bundle's metadata")
    card.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    card.add_argument("--command", dest="reproduce", default="", help="the command that made it")
    imp = sub.add_parser("import", help="build a manifest from a public collection's layout")
    imp.add_argument("layout", choices=["covid-chestxray", "kermany", "imagefolder"])
    imp.add_argument("root", type=Path)
    imp.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.command == "train":
        from training.fit import fit

        records = [r for m in args.manifest for r in read_manifest(m)]
        cfg = TrainConfig(
            archs=args.arch,
            epochs=args.epochs,
            strategy=args.strategy,
            freeze_layers=args.freeze_layers,
            init=args.init,
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience,
            input_size=args.input_size,
            seed=args.seed,
            balance=args.balance,
            source_power=args.source_power,
            hflip=args.hflip,
            augment=not args.no_augment,
            calibrate=not args.no_calibrate,
            covid_sensitivity=args.covid_sensitivity or None,
            device=args.device,
            precision=args.precision,
        )
        sources = [{"manifest": str(m)} for m in args.manifest]
        meta = fit(records, args.out, cfg, data_sources=sources)
        print(format_report(meta.metrics["ensemble"]))
        print(f"wrote {args.out}")
    elif args.command == "evaluate":
        from training.evaluate import evaluate_bundle

        report = evaluate_bundle(
            args.bundle, read_manifest(args.manifest), device=args.device, plots=args.plots
        )
        print(format_report(report))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
    elif args.command == "calibrate":
        from training.fit import recalibrate

        changes = {
            k: v
            for k, v in {
                "covid_sensitivity": args.covid_sensitivity,
                "covid_min_specificity": args.covid_min_specificity,
            }.items()
            if v is not None
        }
        records = [r for m in args.manifest for r in read_manifest(m)]
        meta = recalibrate(args.bundle, records, args.out or args.bundle, **changes)
        print(format_report(meta.metrics["ensemble"]))
        print(f"wrote {args.out or args.bundle}")
    elif args.command == "card":
        from training.card import model_card

        print(model_card(args.bundle, args.reproduce))
    else:
        from training import importers

        records = importers.IMPORTERS[args.layout](args.root)
        write_manifest(args.out, records, relative_to=args.out.parent)
        print(f"wrote {len(records)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
