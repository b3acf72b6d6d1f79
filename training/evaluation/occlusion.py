"""The occlusion check: does the call come from the lungs?

A heatmap penalty can be gamed (the map shows the lungs while something else moves the
call). Here everything outside the predicted lungs is greyed out and the film predicted
again: a model that reads the lungs keeps its label. Two ways, because the model's intensity
step (histogram equalisation) reacts to a large flat region: the film greyed out before the
Predictor sees it (its lungs are then equalised differently), and the model input greyed out
after that step (``Predictor.lungs_only``: the lungs keep the grey levels the model saw).
"""

from collections import defaultdict

import numpy as np
from PIL import Image

from classifier import load_bundle
from classifier.preprocess import to_gray_array
from training.data.datasets import load_gray
from training.data.manifests import Record
from training.evaluation.metrics import rate


def occlude(array: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The film (a grey array in [0, 1]) with every pixel outside ``mask`` (any size, resized
    to the film's) set to the film's median grey."""
    full = Image.fromarray(mask.astype(np.uint8) * 255).resize(
        (array.shape[1], array.shape[0]), Image.NEAREST
    )
    inside = np.asarray(full) > 127
    out = np.where(inside, array, np.median(array))
    return Image.fromarray((np.clip(out, 0, 1) * 255).round().astype(np.uint8), mode="L")


def occlusion_agreement(
    bundle, records: list[Record], *, device=None, batch_size: int = 16
) -> dict:
    """The share of films whose label survives greying out all but their predicted lungs,
    overall and per source, with Wilson intervals. Films whose lungs the segmenter does not
    find are counted apart (nothing to keep)."""
    predictor = load_bundle(bundle, device=device, batch_size=batch_size, gate=False)
    if predictor.segmenter is None:
        raise ValueError("the occlusion check needs a bundle with a lung segmenter")
    agree: dict[str, list[bool]] = defaultdict(list)
    changed: dict[str, int] = defaultdict(int)
    agree_input: dict[str, list[bool]] = defaultdict(list)
    changed_input: dict[str, int] = defaultdict(int)
    no_lungs = 0
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        films = [load_gray(r.path) for r in chunk]
        first = predictor.predict(films, cam=False)
        kept = [i for i, p in enumerate(first) if p.lung_mask is not None and p.lung_mask.any()]
        no_lungs += len(chunk) - len(kept)
        if not kept:
            continue
        occluded = [occlude(to_gray_array(films[i]), first[i].lung_mask) for i in kept]
        _compare(kept, first, predictor.predict(occluded, cam=False), chunk, agree, changed)
        predictor.lungs_only = True
        again = predictor.predict([films[i] for i in kept], cam=False)
        predictor.lungs_only = False
        _compare(kept, first, again, chunk, agree_input, changed_input)
    return {
        **_summary(agree, changed),
        "grey": "the film's median, before the model's intensity step",
        "input": {
            **_summary(agree_input, changed_input),
            "grey": "the model input's mean, after the intensity step",
        },
        "no_lungs_found": no_lungs,
    }


def _compare(kept, first, second, chunk, agree, changed) -> None:
    for i, again in zip(kept, second, strict=True):
        same = first[i].label == again.label
        agree[chunk[i].source].append(same)
        if not same:
            changed[f"{first[i].label} -> {again.label}"] += 1


def _summary(agree: dict, changed: dict) -> dict:
    every = [v for values in agree.values() for v in values]
    return {
        "all": rate(np.array(every)),
        "per_source": {s: rate(np.array(v)) for s, v in sorted(agree.items())},
        "changed": dict(sorted(changed.items(), key=lambda kv: -kv[1])),
    }
