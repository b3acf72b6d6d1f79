"""The drift monitor on real films: how many films after a shift its alarms fire, and how
often they fire on films that did not shift. The figures in xrayweb/README.md ("The drift
monitor") come from this command.

    python -m tests.bench.drift [--streams 100] [--seed 0]

1. The shipped bundle (its gate included, at the precision the worker would pick here) reads
   the films of its own test split (never trained on: the in-distribution stream) and three
   shifted streams: Montgomery's films (another hospital, in no training set), the test films
   rendered at an eighth of their resolution (a blurred rendering), and the test films with
   their grey levels gamma-shifted (0.5 and 2). The measurements are kept in
   var/drift/<bundle sha>.json, so a second run only simulates.
2. Each of ``--streams`` random orders of the in-distribution films (150 of them) is followed
   by a random order of a shifted stream's films; and, for false alarms alone, random orders
   of 300 in-distribution films that never shift. The monitor's own rules
   (xrayweb.review.monitoring.statuses_measure, thresholds as in settings) judge the stream
   after every film, each film read by a radiologist with its true label where it is one of
   the model's classes.
3. Printed per shifted stream: the streams with a false alarm before the shift, the checks
   that fired before it, and the films after the shift until the first alarm (median, 90th
   percentile, the share of streams where it fired at all), per signal and for any signal.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IN_DISTRIBUTION = 150
CALM_ONLY = 300  # the stream that never shifts: false alarms only


@dataclass
class Version:
    """What the rules read of a model version."""

    classes: list[str]
    drift_reference: dict


def films_measure(bundle: Path, manifests: list[Path], external: Path) -> dict:
    """Every stream's films as the bundle reads them: distance, label, confidence, whether
    the gate passed it, and the true label."""
    import numpy as np
    from PIL import Image

    from classifier import load_bundle, read_metadata
    from training.cli.common import records_read
    from training.data.datasets import load_gray
    from training.data.manifests import split_by_patient

    meta = read_metadata(bundle)
    config = meta.training["config"]
    films = records_read(manifests)
    test = split_by_patient(
        films, val=config["val_fraction"], test=config["test_fraction"], seed=config["seed"]
    )["test"]
    predictor = load_bundle(bundle, device="cpu")

    def read(images, records) -> list[dict]:
        rows = []
        for start in range(0, len(images), 16):
            for r in predictor.predict(images[start : start + 16], cam=False):
                rows.append(
                    {
                        "distance": r.assessment.scores.get("feature_distance"),
                        "label": r.label,
                        "confidence": r.probabilities[r.label],
                        "assessable": r.assessment.assessable,
                    }
                )
        return [
            row | {"truth": r.label, "source": r.source or "unknown"}
            for row, r in zip(rows, records, strict=True)
        ]

    def gamma(image, g: float):
        a = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
        return Image.fromarray((np.clip(a**g, 0, 1) * 255).astype(np.uint8))

    images = [load_gray(r.path) for r in test]
    others = records_read([external])
    return {
        "bundle_precision": "bf16" if predictor.bf16 else "fp32",
        "in-distribution (test split)": read(images, test),
        "another hospital (Montgomery)": read([load_gray(r.path) for r in others], others),
        "blurred rendering (1/8 resolution)": read([blurred(i) for i in images], test),
        "gamma 0.5": read([gamma(i, 0.5) for i in images], test),
        "gamma 2": read([gamma(i, 2.0) for i in images], test),
    }


def blurred(image):
    """A film rendered at an eighth of its resolution and scaled back up."""
    small = image.resize((max(1, image.width // 8), max(1, image.height // 8)))
    return small.resize(image.size)


def as_films(rows: list[dict], classes: list[str], start: datetime) -> list:
    """Measured rows as the monitor's films, an hour apart from ``start``; each read by a
    radiologist with its true label when that is one of the model's classes."""
    from xrayweb.review.monitoring import Film

    return [
        Film(
            at=start + timedelta(hours=i),
            distance=row["distance"],
            readable=row["assessable"],
            label=row["label"],
            confidence=row["confidence"],
            truth=row["truth"] if row["assessable"] and row["truth"] in classes else None,
        )
        for i, row in enumerate(rows)
    ]


def stream_judge(films: list, version, rules, *, shift_at: int) -> dict:
    """Judge the stream after every film: the checks that fired before ``shift_at`` (signals
    per check), and per signal the films after the shift until it first fired (None: never)."""
    from xrayweb.review.monitoring import statuses_measure

    before, delays = [], {}
    for i in range(rules.min_films, len(films) + 1):
        firing = {s.signal for s in statuses_measure(films[:i], version, rules) if s.firing}
        if i <= shift_at:
            if firing:
                before.append(firing)
            continue
        for signal in firing:
            delays.setdefault(str(signal), i - shift_at)
    return {"false": before, "delays": delays}


def simulate(streams: dict, reference: dict, classes: list[str], *, count: int, seed: int):
    from xrayweb.review.models import DriftSignal
    from xrayweb.review.monitoring import Rules

    rules = Rules.from_settings()
    version = Version(classes, reference)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    rng = random.Random(seed)
    calm = streams["in-distribution (test split)"]
    table = {}
    shifts = {"no shift (300 in-distribution films)": []} | {
        name: rows
        for name, rows in streams.items()
        if isinstance(rows, list) and not name.startswith("in-distribution")
    }
    for name, shifted in shifts.items():
        calm_films = IN_DISTRIBUTION if shifted else CALM_ONLY
        runs = []
        for _ in range(count):
            rows = rng.sample(calm, calm_films) + rng.sample(shifted, len(shifted))
            runs.append(
                stream_judge(as_films(rows, classes, start), version, rules, shift_at=calm_films)
            )
        checks = calm_films - rules.min_films + 1
        row = {
            "films after the shift": len(shifted),
            "streams with a false alarm": sum(bool(r["false"]) for r in runs) / count,
            "checks that fired before the shift": sum(len(r["false"]) for r in runs)
            / (count * checks),
        }
        for signal in [*DriftSignal.values, "any"]:
            delays = [
                min(r["delays"].values(), default=None)
                if signal == "any"
                else r["delays"].get(signal)
                for r in runs
            ]
            found = sorted(d for d in delays if d is not None)
            row[signal] = {
                "fired": len(found) / count,
                "median": statistics.median(found) if found else None,
                "p90": found[min(len(found) - 1, int(0.9 * len(found)))] if found else None,
            }
        table[name] = row
    return {"rules": rules.__dict__, "window": rules.window, "streams": count, "table": table}


def _summary(rows: list[dict], p95: float, classes: list[str]) -> str:
    beyond = sum(r["distance"] > p95 for r in rows) / len(rows)
    readable = [r for r in rows if r["assessable"]]
    confidence = sum(r["confidence"] for r in readable) / len(readable)
    known = [r for r in readable if r["truth"] in classes]
    agree = sum(r["label"] == r["truth"] for r in known) / len(known) if known else float("nan")
    return f"{len(rows):>5}{beyond:>12.0%}{confidence:>12.3f}{agree:>10.3f}{len(known):>8}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.drift",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--bundle", type=Path, default=ROOT / "classifier/models/default.safetensors"
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        action="append",
        default=None,
        help="the manifests the bundle was trained on (default: cxr and Shenzhen)",
    )
    parser.add_argument("--external", type=Path, default=ROOT / "var/montgomery.csv")
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    manifests = args.manifest or [
        ROOT / "../shared/data/cxr/manifest.csv",
        ROOT / "var/shenzhen.csv",
    ]

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrayweb.settings")
    import django

    django.setup()
    from classifier import bundle_sha256, read_metadata
    from xrayweb.review.stats import wilson

    meta = read_metadata(args.bundle)
    reference = (meta.gate or {}).get("reference") or {}
    if not reference.get("val_distance_quantiles"):
        print(
            f"{args.bundle} has no drift reference: python -m training gate-reference",
            file=sys.stderr,
        )
        return 2
    # The measured rows, per bundle (v2: with each film's source).
    cache = ROOT / "var/drift" / f"{bundle_sha256(args.bundle)[:16]}-v2.json"
    if cache.is_file():
        streams = json.loads(cache.read_text())
    else:
        started = time.perf_counter()
        streams = films_measure(args.bundle, manifests, args.external)
        print(f"films read in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(streams))
    classes = list(meta.classes)
    print(
        f"bundle {args.bundle.name}, read at {streams['bundle_precision']}; training films' "
        f"95th percentile of the distance {reference['distance_p95']:.0f}, validation films "
        f"beyond it {reference['val_beyond_p95']:.0%}"
    )
    print(f"{'stream':<38}{'films':>5}{'beyond p95':>12}{'confidence':>12}{'agree':>10}{'read':>8}")
    for name, rows in streams.items():
        if isinstance(rows, list):
            print(f"{name:<38}" + _summary(rows, reference["distance_p95"], classes))
    # A site is one source, not the pooled validation films: each source of the test split.
    calm = streams["in-distribution (test split)"]
    print()
    print("in-distribution films beyond the training p95, per source (95% Wilson interval)")
    for source in sorted({r["source"] for r in calm}):
        rows = [r for r in calm if r["source"] == source]
        beyond = sum(r["distance"] > reference["distance_p95"] for r in rows)
        low, high = wilson(beyond, len(rows))
        print(f"  {source:<12}{len(rows):>5}{beyond / len(rows):>8.0%}  ({low:.0%}-{high:.0%})")
    result = simulate(streams, reference, classes, count=args.streams, seed=args.seed)
    print()
    print(
        f"{args.streams} streams each: {IN_DISTRIBUTION} in-distribution films, then the shifted "
        f"stream; judged after every film over the last {result['window']} films"
    )
    signals = ["distance", "mix", "confidence", "agreement", "any"]
    print(
        f"{'shifted stream':<38}{'false-alarm streams':>20}{'checks':>8}  "
        + "".join(f"{s + ' (fired, median, p90)':>34}" for s in signals)
    )
    for name, row in result["table"].items():
        cells = []
        for s in signals:
            d = row[s]
            cells.append(
                f"{d['fired']:>14.0%}{'-' if d['median'] is None else d['median']:>10}"
                f"{'-' if d['p90'] is None else d['p90']:>10}"
            )
        print(
            f"{name:<38}{row['streams with a false alarm']:>20.0%}"
            f"{row['checks that fired before the shift']:>8.1%}  "
            + "".join(f"{c:>34}" for c in cells)
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
