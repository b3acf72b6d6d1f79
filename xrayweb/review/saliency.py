"""Saliency on the agreement dashboard: where the model looked.
``Prediction.cam_lung_fraction`` is the share of the fused Grad-CAM's mass inside the
predicted lungs; a prediction below the threshold
(``CAM_OUTSIDE_LUNGS_THRESHOLD``) "looked outside the lungs", the mark of a shortcut. Not-assessable
and not-diagnostic films are left out: where the model looks on a CT slice says nothing."""

from collections import defaultdict

import numpy as np

from xrayweb.review.agreement import NOT_READABLE, AgreementSlice, agreement_slice


def fraction_summary(*, values: list[float], empty: int, threshold: float) -> dict:
    """n, quartiles, range and the share below ``threshold`` of measured fractions; ``empty``
    counts the predictions with a lung mask but an empty heatmap (nothing to measure)."""
    values = sorted(values)
    if not values:
        return {"n": 0, "empty": empty, "below": 0, "share_below": None}
    below = sum(v < threshold for v in values)
    q1, median, q3 = (float(q) for q in np.percentile(values, [25, 50, 75]))
    return {
        "n": len(values),
        "empty": empty,
        "below": below,
        "share_below": below / len(values),
        "min": values[0],
        "q1": q1,
        "median": median,
        "q3": q3,
        "max": values[-1],
    }


def saliency_distribution(*, where: AgreementSlice, threshold: float) -> dict:
    """The distribution of cam_lung_fraction over the slice's readable predictions, overall,
    per predicted class and per model version, in one query."""
    rows = (
        agreement_slice(where=where)
        .exclude(NOT_READABLE)
        .exclude(lung_mask="")  # predicted without a segmenter: nothing was measured
        .values_list("label", "model_version__name", "cam_lung_fraction")
    )
    groups = {"all": defaultdict(list), "class": defaultdict(list), "version": defaultdict(list)}
    empty = {name: defaultdict(int) for name in groups}
    for label, version, fraction in rows:
        for name, key in (("all", "all"), ("class", label), ("version", version)):
            if fraction is None:
                empty[name][key] += 1
                groups[name].setdefault(key, [])  # a group even if all its maps were empty
            else:
                groups[name][key].append(fraction)

    def summaries(name: str) -> list[dict]:
        return [
            {
                "group": key,
                **fraction_summary(values=v, empty=empty[name][key], threshold=threshold),
            }
            for key, v in sorted(groups[name].items())
        ]

    overall = summaries("all")
    return {
        "threshold": threshold,
        "overall": overall[0] if overall else fraction_summary(values=[], empty=0, threshold=0),
        "by_class": summaries("class"),
        "by_version": summaries("version"),
    }
