"""``python -m training gate-reference``: measure the drift monitor's reference for a bundle
that has a gate, and write the bundle with it (weights unchanged)."""

import json
from pathlib import Path

from classifier import DEFAULT_BUNDLE
from training.cli.common import manifest_option, records_read


def add_parser(sub) -> None:
    cmd = sub.add_parser(
        "gate-reference",
        help="measure what the drift monitor compares new films with, and write it into a bundle",
    )
    cmd.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    manifest_option(
        cmd, help="the manifest(s) the bundle was trained on: its own split of them is used"
    )
    cmd.add_argument("--out", type=Path, required=True)
    cmd.add_argument("--json", type=Path, help="write the reference here as well")
    cmd.set_defaults(run=run)


def run(args) -> int:
    from training.gate.reference import reference_measure, reference_write

    reference = reference_measure(args.bundle, records_read(args.manifest))
    sha = reference_write(args.bundle, reference, args.out)
    summary = {k: v for k, v in reference.items() if not k.endswith("distance_quantiles")}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(reference, indent=2) + "\n")
    print(f"wrote {args.out} (sha256 {sha})")
    return 0
