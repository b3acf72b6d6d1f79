"""``python -m training evaluate``: evaluate a bundle on manifests, or on its own test split."""

import json
from pathlib import Path

from classifier import DEFAULT_BUNDLE
from training.cli.common import csv_list, manifest_option, records_read


def add_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help="evaluate a bundle on a manifest")
    ev.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    manifest_option(
        ev,
        required=False,
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
        type=lambda v: tuple(float(x) for x in csv_list(v)),
        default=(),
        help="test-time zooms averaged with the input, e.g. 0.92,1.08",
    )
    ev.add_argument("--json", type=Path)
    ev.add_argument("--plots", type=Path, help="folder for confusion/ROC/reliability PNGs")
    ev.add_argument("--device", default=None)
    ev.set_defaults(run=run)


def run(args) -> int:
    from training.evaluation.evaluate import bundle_test_split, evaluate_bundle, refuse_seen
    from training.evaluation.report import format_evaluation, format_report

    records = records_read(args.manifest)
    if args.test_split_of:
        seen, test = bundle_test_split(args.bundle, records_read(args.test_split_of))
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
    return 0
