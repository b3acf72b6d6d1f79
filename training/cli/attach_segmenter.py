"""``python -m training attach-segmenter``: a copy of a bundle with a lung segmenter in it."""

from pathlib import Path

from classifier import DEFAULT_BUNDLE


def add_parser(sub) -> None:
    att = sub.add_parser("attach-segmenter", help="copy a bundle with a lung segmenter in it")
    att.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    att.add_argument("--segmenter", type=Path, required=True)
    att.add_argument("--out", type=Path, help="default: overwrite --bundle")
    att.set_defaults(run=run)


def run(args) -> int:
    from classifier.bundle import attach_segmenter

    out = args.out or args.bundle
    sha = attach_segmenter(args.bundle, args.segmenter, out)
    print(f"wrote {out} (sha256 {sha})")
    return 0
