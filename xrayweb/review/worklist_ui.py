"""What the worklist page shows around its filters: the active ones as removable chips, and
the column headers that sort (with the state screen readers announce)."""

from django.http import QueryDict

from xrayweb.review.filters import PRIMARY_FILTERS

# Column -> (ascending sort, descending sort); the first click sorts the way a reader wants
# first (the newest, the least confident).
SORTABLE_COLUMNS = {
    "uploaded": ("oldest", "newest"),
    "patient": ("patient", "patient_desc"),
    "confidence": ("uncertain", "confident"),
}
FIRST_CLICK = {"uploaded": "newest", "patient": "patient", "confidence": "uncertain"}
KEPT_OUT = {"page", "sort", "per_page"}


def _url(params: QueryDict, **changes) -> str:
    query = params.copy()
    query.pop("page", None)
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return "?" + query.urlencode() if query else "?"


def filter_chips(*, filters, params: QueryDict) -> list[dict]:
    """One chip per active filter: its label, the value as the form shows it, and the URL
    without it."""
    chips = []
    form = filters.form
    for name, field in form.fields.items():
        value = params.get(name, "")
        if name in KEPT_OUT or not value:
            continue
        shown = value
        for key, label in getattr(field, "choices", []):
            if str(key) == value:
                shown = label
                break
        chips.append(
            {
                "name": name,
                "label": field.label,
                "value": shown,
                "url": _url(params, **{name: None}),
            }
        )
    return chips


def filter_groups(*, filters, params: QueryDict) -> tuple[list, list, bool]:
    """(always shown, behind "More filters", whether one of the latter is set)."""
    fields = [f for f in filters.form if f.name != "sort"]
    primary = [f for f in fields if f.name in PRIMARY_FILTERS]
    more = [f for f in fields if f.name not in PRIMARY_FILTERS]
    return primary, more, any(params.get(f.name) for f in more)


def sort_headers(*, params: QueryDict) -> dict[str, dict]:
    """Per sortable column: the link that sorts by it (or flips it), and aria-sort."""
    current = params.get("sort", "")
    headers = {}
    for column, (ascending, descending) in SORTABLE_COLUMNS.items():
        if current == ascending:
            state, following = "ascending", descending
        elif current == descending:
            state, following = "descending", ascending
        else:
            state, following = "none", FIRST_CLICK[column]
        headers[column] = {"aria_sort": state, "url": _url(params, sort=following)}
    return headers
