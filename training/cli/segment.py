"""``python -m training segment``: train the lung segmenter on films with lung masks."""

from pathlib import Path

from training.cli.common import csv_list, manifest_option, records_read


def add_parser(sub) -> None:
    seg = sub.add_parser("segment", help="train the lung segmenter on films with lung masks")
    manifest_option(seg)
    seg.add_argument("--out", type=Path, required=True)
    seg.add_argument("--epochs", type=int, default=25)
    seg.add_argument("--input-size", type=int, default=128)
    seg.add_argument(
        "--widths", type=lambda v: [int(x) for x in csv_list(v)], default=[16, 32, 64, 128]
    )
    seg.add_argument("--batch-size", type=int, default=16)
    seg.add_argument("--lr", type=float, default=3e-3)
    seg.add_argument("--seed", type=int, default=0)
    seg.add_argument("--no-augment", action="store_true")
    seg.add_argument("--device", default="auto")
    seg.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    seg.set_defaults(run=run)


def run(args) -> int:
    from training.ensemble.config import SegmentConfig
    from training.lungs.segment import train_segmenter

    cfg = SegmentConfig(
        widths=args.widths,
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        augment=not args.no_augment,
        device=args.device,
        precision=args.precision,
    )
    sources = [{"manifest": str(m)} for m in args.manifest]
    spec = train_segmenter(records_read(args.manifest), args.out, cfg, data_sources=sources)
    test = spec.metrics["test"]
    print(
        f"{spec.metrics['split']} split: n={test['n']} Dice mean {test['dice_mean']:.4f} "
        f"(95% CI {test['dice_ci'][0]:.4f}-{test['dice_ci'][1]:.4f}) median "
        f"{test['dice_median']:.4f} min {test['dice_min']:.4f}"
        if test["dice_ci"]
        else f"{spec.metrics['split']} split: n={test['n']} Dice {test['dice_mean']:.4f}"
    )
    for source, sub in test["per_source"].items():
        print(f"  source {source:<12} n={sub['n']:<4} Dice mean {sub['dice_mean']:.4f}")
    print(f"wrote {args.out}")
    return 0
