"""python -m training train|evaluate|import ..."""

import argparse
import json
import sys
from pathlib import Path

from classifier import DEFAULT_BUNDLE
from classifier.metadata import CROPS, INTENSITIES
from training.cli import gate as gate_cli
from training.data.manifests import ManifestError, read_manifest, write_manifest
from training.ensemble.config import BALANCES, CAM_EMPTY, STRATEGIES, TrainConfig


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
    train.add_argument(
        "--segmenter",
        type=Path,
        help="a lung segmenter file or a bundle with one: the new bundle carries it",
    )
    train.add_argument(
        "--gate",
        type=Path,
        help="a bundle with a not-assessable gate: the new bundle carries it, refitted",
    )
    _train_options(train)
    cv = sub.add_parser("cv", help="patient-grouped k-fold cross-validation of a recipe")
    cv.add_argument("--manifest", type=Path, action="append", required=True)
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument(
        "--by",
        choices=["patient", "location"],
        default="patient",
        help="patient: k folds of patients; location: leave one hospital/collection out",
    )
    cv.add_argument(
        "--groups", type=_csv, default=None, help="with --by location: only these groups"
    )
    cv.add_argument(
        "--min-covid",
        type=int,
        default=14,
        help="with --by location: hold out the groups with at least this many covid19 films",
    )
    cv.add_argument("--json", type=Path)
    cv.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    cv.add_argument(
        "--segmenter", type=Path, help="a lung segmenter (for crop=lungs and --cam-lungs)"
    )
    _train_options(cv)
    lev = sub.add_parser("levers", help="recipe settings on and off, over seeds")
    lev.add_argument("--manifest", type=Path, action="append", required=True)
    lev.add_argument(
        "--lungs", type=Path, required=True, help="the lungs/ manifest (Shenzhen, Montgomery)"
    )
    lev.add_argument(
        "--setting",
        action="append",
        required=True,
        help="name:key=value,...  (TrainConfig fields; shenzhen=none|normal|all)",
    )
    lev.add_argument("--seeds", type=lambda v: [int(x) for x in _csv(v)], default=[0, 1, 2])
    lev.add_argument("--json", type=Path, help="written after every run")
    lev.add_argument(
        "--segmenter", type=Path, help="a lung segmenter (for crop=lungs and the CAM fraction)"
    )
    _train_options(lev)


def _train_options(train) -> None:
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
    train.add_argument(
        "--render",
        action="store_true",
        help="augment renderings: window, gamma, resolution, JPEG quality, black borders",
    )
    train.add_argument(
        "--artifacts",
        action="store_true",
        help="augment with what the collections differ by: markers, text, captions, arrows, "
        "tubes, crops and borders, vendor processing",
    )
    train.add_argument(
        "--lungs-only",
        type=float,
        default=0.0,
        metavar="P",
        help="show a training film with only its predicted lungs (the rest at the mean grey) "
        "with probability P; needs --segmenter",
    )
    train.add_argument("--intensity", choices=INTENSITIES, default="as_is")
    train.add_argument("--crop", choices=CROPS, default="none")
    train.add_argument("--crop-margin", type=float, default=0.1)
    train.add_argument(
        "--not-covid-labels",
        type=_csv,
        default=[],
        help="labels outside the classes that are certainly not covid19 (e.g. tuberculosis)",
    )
    train.add_argument("--ema", type=float, default=0.0, help="weight EMA decay; 0: off")
    train.add_argument(
        "--cam-lungs",
        type=float,
        default=0.0,
        help="weight of the penalty on class activation outside the lungs (needs --segmenter)",
    )
    train.add_argument(
        "--cam-empty",
        choices=CAM_EMPTY,
        default="outside",
        help="the penalty counts an empty map as wholly outside the lungs, or as free",
    )
    train.add_argument(
        "--adversary",
        type=float,
        default=0.0,
        help="weight of a gradient-reversal head on the source, given the class; 0: off",
    )
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


def _segment_parsers(sub) -> None:
    seg = sub.add_parser("segment", help="train the lung segmenter on films with lung masks")
    seg.add_argument("--manifest", type=Path, action="append", required=True)
    seg.add_argument("--out", type=Path, required=True)
    seg.add_argument("--epochs", type=int, default=25)
    seg.add_argument("--input-size", type=int, default=128)
    seg.add_argument(
        "--widths", type=lambda v: [int(x) for x in _csv(v)], default=[16, 32, 64, 128]
    )
    seg.add_argument("--batch-size", type=int, default=16)
    seg.add_argument("--lr", type=float, default=3e-3)
    seg.add_argument("--seed", type=int, default=0)
    seg.add_argument("--no-augment", action="store_true")
    seg.add_argument("--device", default="auto")
    seg.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    sheet = sub.add_parser("contact-sheet", help="lung contours on films of each source (PNG)")
    sheet.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    sheet.add_argument("--manifest", type=Path, action="append", required=True)
    sheet.add_argument("--out", type=Path, required=True, help="a folder")
    sheet.add_argument("--per-source", type=int, default=24)
    sheet.add_argument("--seed", type=int, default=0)
    sheet.add_argument("--json", type=Path, help="the lung-area table as JSON")
    att = sub.add_parser("attach-segmenter", help="copy a bundle with a lung segmenter in it")
    att.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    att.add_argument("--segmenter", type=Path, required=True)
    att.add_argument("--out", type=Path, help="default: overwrite --bundle")


def _segment(args) -> int:
    if args.command == "segment":
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
        records = [r for m in args.manifest for r in read_manifest(m)]
        sources = [{"manifest": str(m)} for m in args.manifest]
        spec = train_segmenter(records, args.out, cfg, data_sources=sources)
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
    elif args.command == "contact-sheet":
        from training.lungs.contact import contact_sheets

        records = [r for m in args.manifest for r in read_manifest(m)]
        paths, table = contact_sheets(
            args.bundle, records, args.out, per_source=args.per_source, seed=args.seed
        )
        print("| source/label | n | lung area median | quartiles |")
        print("| --- | --- | --- | --- |")
        for key, q in table["per_source_label"].items():
            print(f"| {key} | {q['n']} | {q['median']:.3f} | {q['q1']:.3f}–{q['q3']:.3f} |")
        if args.json:
            args.json.write_text(json.dumps(table, indent=2))
        for path in paths:
            print(f"wrote {path}")
    else:
        from classifier.bundle import attach_segmenter

        out = args.out or args.bundle
        sha = attach_segmenter(args.bundle, args.segmenter, out)
        print(f"wrote {out} (sha256 {sha})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    ev = sub.add_parser("evaluate", help="evaluate a bundle on a manifest")
    ev.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    ev.add_argument(
        "--manifest",
        type=Path,
        action="append",
        default=[],
        help="rows to evaluate (all of them; rows marked external go to the external table)",
    )
    ev.add_argument(
        "--test-split-of",
        type=Path,
        action="append",
        default=[],
        help="the manifest(s) the bundle was trained on: evaluate its own test split of them",
    )
    ev.add_argument("--no-cam", action="store_true", help="skip Grad-CAM (no CAM lung fraction)")
    ev.add_argument(
        "--occlusion",
        action="store_true",
        help="grey out all but the predicted lungs, predict again, report label agreement",
    )
    ev.add_argument(
        "--tta",
        type=lambda v: tuple(float(x) for x in _csv(v)),
        default=(),
        help="test-time zooms averaged with the input, e.g. 0.92,1.08",
    )
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
    card = sub.add_parser(
        "card",
        help="the model card: the metadata part printed, or (--evaluation) the whole card written",
    )
    card.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    card.add_argument("--command", dest="reproduce", default="", help="the command that made it")
    card.add_argument(
        "--evaluation",
        type=Path,
        help="write the whole card (to --out) from the evaluation outputs in this folder, "
        "e.g. classifier/models/evaluation; without it, print the metadata part",
    )
    card.add_argument("--out", type=Path, default=DEFAULT_BUNDLE.parent / "MODEL_CARD.md")
    imp = sub.add_parser("import", help="build a manifest from a public collection's layout")
    imp.add_argument("layout", choices=["covid-chestxray", "kermany", "imagefolder", "lungs"])
    imp.add_argument("root", type=Path)
    imp.add_argument("--out", type=Path, required=True)
    imp.add_argument(
        "--source",
        type=_csv,
        default=[],
        help="keep only rows of these sources (e.g. shenzhen, or montgomery)",
    )
    _segment_parsers(sub)
    gate_cli.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _config(args) -> TrainConfig:
    return TrainConfig(
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
        render=args.render,
        artifacts=args.artifacts,
        lungs_only=args.lungs_only,
        intensity=args.intensity,
        crop=args.crop,
        crop_margin=args.crop_margin,
        not_covid_labels=args.not_covid_labels,
        ema=args.ema,
        cam_lungs=args.cam_lungs,
        cam_empty=args.cam_empty,
        adversary=args.adversary,
        augment=not args.no_augment,
        calibrate=not args.no_calibrate,
        covid_sensitivity=args.covid_sensitivity or None,
        device=args.device,
        precision=args.precision,
        segmenter=str(args.segmenter) if getattr(args, "segmenter", None) else None,
        gate=str(args.gate) if getattr(args, "gate", None) else None,
    )


def _run(args) -> int:  # noqa: C901 (to be one module per subcommand: issue 28, training/cli/)
    if args.command == "gate":
        return gate_cli.run(args)
    if args.command in {"segment", "attach-segmenter", "contact-sheet"}:
        return _segment(args)
    if args.command == "train":
        from training.ensemble.fit import fit

        records = [r for m in args.manifest for r in read_manifest(m)]
        sources = [{"manifest": str(m)} for m in args.manifest]
        meta = fit(records, args.out, _config(args), data_sources=sources)
        print(format_report(meta.metrics["ensemble"]))
        print(f"wrote {args.out}")
    elif args.command == "cv" and args.by == "location":
        from training.evaluation.holdout import format_holdout, leave_group_out

        records = [r for m in args.manifest for r in read_manifest(m)]
        result = leave_group_out(
            records, _config(args), groups=args.groups, min_covid=args.min_covid
        )
        result["manifests"] = [str(m) for m in args.manifest]
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        print(format_holdout(result))
    elif args.command == "cv":
        from training.evaluation.cv import cross_validate
        from training.evaluation.report import format_cv

        records = [r for m in args.manifest for r in read_manifest(m)]
        result = cross_validate(records, _config(args), folds=args.folds, n_boot=args.bootstrap)
        result["manifests"] = [str(m) for m in args.manifest]
        print(format_cv(result))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    elif args.command == "levers":
        from training.evaluation.levers import format_levers, lever_runs, parse_setting

        settings = dict(parse_setting(text) for text in args.setting)
        result = lever_runs(
            [r for m in args.manifest for r in read_manifest(m)],
            read_manifest(args.lungs),
            _config(args),
            settings,
            seeds=args.seeds,
            out=args.json,
        )
        print(format_levers(result))
    elif args.command == "evaluate":
        from training.evaluation.evaluate import bundle_test_split, evaluate_bundle, refuse_seen
        from training.evaluation.report import format_evaluation

        records = [r for m in args.manifest for r in read_manifest(m)]
        if args.test_split_of:
            seen, test = bundle_test_split(
                args.bundle, [r for m in args.test_split_of for r in read_manifest(m)]
            )
            refuse_seen(seen, records)
            records = test + records
        if not records:
            raise ValueError("give --manifest and/or --test-split-of")
        report = evaluate_bundle(
            args.bundle,
            records,
            device=args.device,
            plots=args.plots,
            cam=not args.no_cam,
            tta=args.tta,
        )
        if args.occlusion:
            from training.evaluation.occlusion import occlusion_agreement

            report["occlusion"] = occlusion_agreement(args.bundle, records, device=args.device)
        print(format_report(report))
        print(format_evaluation(report))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
    elif args.command == "calibrate":
        from training.ensemble.fit import recalibrate

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
    elif args.command == "card" and args.evaluation:
        from training.evaluation.card_document import REPRODUCE, card_document_write

        lines = card_document_write(
            evaluation=args.evaluation,
            bundle=args.bundle,
            out=args.out,
            reproduce=args.reproduce or REPRODUCE,
        )
        print(f"wrote {args.out} ({lines} lines)")
    elif args.command == "card":
        from training.evaluation.card import model_card

        print(model_card(args.bundle, args.reproduce))
    else:
        from training.data import importers

        records = importers.IMPORTERS[args.layout](args.root)
        if args.source:
            records = [r for r in records if r.source in args.source]
            if not records:
                raise ValueError(f"no rows of source(s) {', '.join(args.source)}")
        write_manifest(args.out, records, relative_to=args.out.parent)
        print(f"wrote {len(records)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
