"""A prediction's conformal sets as the web shows them (classifier.conformal makes them): the
classes the model cannot rule out at a coverage level. Torch-free, Django-free.

Coverage was measured on held-out patients' films that the gate passes, so a film refused by
the gate or by its DICOM header carries no set here, whatever the classifier returned for it
(the stored row keeps that output for the audit)."""

from fractions import Fraction

# Level keys as the classifier writes them (classifier.conformal.level_key).
DISPLAY_LEVEL = "0.90"
LEVELS_SHOWN = ("0.90", "0.95")

CONFIDENT = "confident"
TWO_CLASSES = "two classes"
CANNOT_TELL = "cannot tell"
CERTAINTIES = (CONFIDENT, TWO_CLASSES, CANNOT_TELL)


def class_label(name: str) -> str:
    """A class as the pages name it: "bacterial_pneumonia" -> "bacterial pneumonia"."""
    return name.replace("_", " ")


def sets_trusted(*, prediction_sets: dict | None, assessable: bool | None) -> dict[str, list]:
    """The sets the web may show: none on a film found not assessable."""
    if assessable is False or not prediction_sets:
        return {}
    return {str(level): list(classes) for level, classes in prediction_sets.items() if classes}


def set_size(*, prediction_sets: dict | None, assessable: bool | None) -> int | None:
    """How many classes the display level's set holds; None without one."""
    classes = sets_trusted(prediction_sets=prediction_sets, assessable=assessable).get(
        DISPLAY_LEVEL
    )
    return len(classes) if classes else None


def set_certainty(classes: list[str] | None) -> str | None:
    if not classes:
        return None
    return {1: CONFIDENT, 2: TWO_CLASSES}.get(len(classes), CANNOT_TELL)


def set_words(classes: list[str] | None) -> str:
    """One set in words: "confident (normal)", "covid19 or viral pneumonia", "the model cannot
    tell (…)"."""
    if not classes:
        return "no prediction set"
    labels = [class_label(c) for c in classes]
    if len(labels) == 1:
        return f"confident ({labels[0]})"
    if len(labels) == 2:
        return f"{labels[0]} or {labels[1]}"
    return f"the model cannot tell ({', '.join(labels)})"


def set_absent_reason(*, assessable: bool | None) -> str:
    if assessable is False:
        return "no prediction set: the film is not assessable, so no coverage is claimed"
    return "no prediction set: this model has no conformal calibration"


def level_percent(level: str) -> str:
    return f"{round(float(level) * 100)}%"


def level_odds(level: str) -> str:
    """A coverage level in words people read: "0.90" -> "9 in 10", "0.95" -> "19 in 20"."""
    share = Fraction(level).limit_denominator(100)
    return f"{share.numerator} in {share.denominator}"


def sets_explanation(rows: list[dict]) -> str:
    """What the sets of ``prediction_set_rows`` mean, in one sentence."""
    if not rows:
        return ""
    first, *others = rows
    extra = "".join(f" ({r['odds']} for the {r['percent']} set)" for r in others)
    return (
        f"The {first['percent']} set: the classes the model cannot rule out; {first['odds']} "
        f"such sets contain the true label{extra} on new patients of the hospitals the model "
        "trained on; fewer at hospitals it never saw (the model card has both)."
    )


def prediction_set_rows(*, prediction_sets: dict | None, assessable: bool | None) -> list[dict]:
    """The levels shown on a page, display level first: {"level", "percent", "classes",
    "odds", "labels", "certainty", "words"}. Empty when there is no set to show."""
    trusted = sets_trusted(prediction_sets=prediction_sets, assessable=assessable)
    return [
        {
            "level": level,
            "percent": level_percent(level),
            "odds": level_odds(level),
            "classes": trusted[level],
            "labels": [class_label(c) for c in trusted[level]],
            "certainty": set_certainty(trusted[level]),
            "words": set_words(trusted[level]),
        }
        for level in LEVELS_SHOWN
        if level in trusted
    ]
