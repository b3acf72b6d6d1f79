"""Server-side SVG charts for the agreement dashboard: no JavaScript, nothing from a CDN."""

from django.utils.html import escape

WIDTH, HEIGHT, PAD = 420, 260, 40


def _frame(title: str, body: list[str], x_label: str, y_label: str) -> str:
    x0, y0, x1, y1 = PAD, HEIGHT - PAD, WIDTH - 10, 10
    axes = [
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#555"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#555"/>',
    ]
    for tick in (0.0, 0.5, 1.0):
        y = y0 - tick * (y0 - y1)
        axes.append(
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{tick:g}</text>'
        )
    axes.append(
        f'<text x="{(x0 + x1) / 2}" y="{HEIGHT - 6}" text-anchor="middle" font-size="12">'
        f"{escape(x_label)}</text>"
    )
    axes.append(
        f'<text x="12" y="{(y0 + y1) / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 12 {(y0 + y1) / 2})">{escape(y_label)}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'class="chart" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        + "".join(axes + body)
        + "</svg>"
    )


def reliability_svg(bins: list[dict]) -> str:
    """Bars: how often the model agreed with the radiologists in each confidence bin, against
    the diagonal a calibrated model would follow. bins: {low, high, n, agreement}."""
    x0, y0, x1, y1 = PAD, HEIGHT - PAD, WIDTH - 10, 10
    sx, sy = (x1 - x0), (y0 - y1)
    body = [f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#999" stroke-dasharray="4 3"/>']
    for b in bins:
        if not b["n"]:
            continue
        x = x0 + b["low"] * sx
        w = (b["high"] - b["low"]) * sx - 2
        h = b["agreement"] * sy
        body.append(
            f'<rect class="bin" x="{x + 1:.1f}" y="{y0 - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'fill="#3b7dd8" data-n="{b["n"]}"><title>{b["low"]:.1f}–{b["high"]:.1f}: '
            f"{b['agreement']:.2f} agreement, n={b['n']}</title></rect>"
        )
    for tick in (0.0, 0.5, 1.0):
        body.append(
            f'<text x="{x0 + tick * sx:.1f}" y="{y0 + 14}" text-anchor="middle" font-size="11">'
            f"{tick:g}</text>"
        )
    return _frame("Reliability", body, "model confidence", "agreement with radiologists")


def trend_svg(points: list[dict]) -> str:
    """Agreement per period (points: {period, n, agreement}), oldest on the left."""
    weeks = [p["period"] for p in points]
    series = {
        "name": "",
        "values": {p["period"]: p["agreement"] for p in points},
        "n": {p["period"]: p["n"] for p in points},
    }
    return weekly_svg("Agreement over time", weeks, [series], "agreement")


def saliency_svg(groups: list[dict], threshold: float, title: str) -> str:
    """Box plots of the Grad-CAM mass inside the lungs, one per group ({group, n, min, q1,
    median, q3, max}): whiskers at the range, the box at the quartiles, the threshold under
    which a prediction "looked outside the lungs" as a dashed line."""
    x0, y0, x1, y1 = PAD, HEIGHT - PAD, WIDTH - 10, 10
    sy = y0 - y1

    def at(value: float) -> float:
        return y0 - value * sy

    t = at(threshold)
    body = [
        f'<line class="threshold" x1="{x0}" y1="{t:.1f}" x2="{x1}" y2="{t:.1f}" '
        f'stroke="#c0392b" stroke-dasharray="4 3"/>'
    ]
    measured = [g for g in groups if g["n"]]
    step = (x1 - x0) / max(1, len(measured))
    for i, g in enumerate(measured):
        cx, half = x0 + (i + 0.5) * step, min(18.0, step / 3)
        tip = (
            f"<title>{escape(g['group'])}: median {g['median']:.2f}, quartiles "
            f"{g['q1']:.2f}–{g['q3']:.2f}, n={g['n']}, {g['below']} below {threshold:g}</title>"
        )
        body += [
            f'<line x1="{cx:.1f}" y1="{at(g["min"]):.1f}" x2="{cx:.1f}" y2="{at(g["max"]):.1f}" '
            f'stroke="#555"/>',
            f'<rect class="box" x="{cx - half:.1f}" y="{at(g["q3"]):.1f}" width="{2 * half:.1f}" '
            f'height="{max(1.0, at(g["q1"]) - at(g["q3"])):.1f}" fill="#3b7dd8" '
            f'data-n="{g["n"]}">{tip}</rect>',
            f'<line x1="{cx - half:.1f}" y1="{at(g["median"]):.1f}" x2="{cx + half:.1f}" '
            f'y2="{at(g["median"]):.1f}" stroke="#fff" stroke-width="2"/>',
            f'<text x="{cx:.1f}" y="{y0 + 14}" text-anchor="middle" font-size="11">'
            f"{escape(g['group'][:14])}</text>",
        ]
    return _frame(title, body, "", "Grad-CAM mass inside the lungs")


# Okabe-Ito colours (the charts are drawn on white; yellow left out for its contrast): told
# apart with the common colour-vision deficiencies.
SERIES_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def _runs(values: list[float | None]) -> list[list[tuple[int, float]]]:
    """The runs of consecutive weeks with a value: (index, value) pairs."""
    runs: list[list[tuple[int, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            runs.append([])
        else:
            runs[-1].append((i, value))
    return [run for run in runs if run]


def weekly_svg(
    title: str,
    weeks: list[str],
    series: list[dict],
    y_label: str,
    *,
    reference: float | None = None,
    reference_label: str = "",
) -> str:
    """One line per series ({name, values: {week: value in [0, 1] or None}, and optionally
    n: {week: films}}) over ``weeks`` (oldest on the left), a gap where a week has no value,
    a legend for named series, and an optional dashed reference line."""
    x0, y0, x1, y1 = PAD, HEIGHT - PAD, WIDTH - 10, 10
    step = (x1 - x0) / max(1, len(weeks) - 1)

    def at(i: int, value: float) -> tuple[float, float]:
        x = x0 + i * step if len(weeks) > 1 else (x0 + x1) / 2
        return x, y0 - min(value, 1.0) * (y0 - y1)

    body = []
    if reference is not None:
        y = at(0, reference)[1]
        body.append(
            f'<line class="reference" x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" '
            f'stroke="#555" stroke-dasharray="4 3"><title>{escape(reference_label)}: '
            f"{reference:.2f}</title></line>"
        )
    for k, s in enumerate(series):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        who = f"{s['name']}, " if s["name"] else ""
        for run in _runs([s["values"].get(week) for week in weeks]):
            coords = [at(i, value) for i, value in run]
            if len(run) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
                body.append(
                    f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
                )
            for (i, value), (x, y) in zip(run, coords, strict=True):
                n = s.get("n", {}).get(weeks[i])
                tip = f"{who}week of {weeks[i]}: {value:.2f}" + ("" if n is None else f", n={n}")
                body.append(
                    f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                    f"<title>{escape(tip)}</title></circle>"
                )
        if s["name"]:
            body.append(
                f'<text x="{x0 + 8}" y="{y1 + 12 + 13 * k}" font-size="11" fill="{colour}">'
                f"{escape(s['name'])}</text>"
            )
    for i in sorted({0, len(weeks) - 1}) if weeks else []:
        anchor = "middle" if len(weeks) == 1 else "start" if i == 0 else "end"
        body.append(
            f'<text x="{at(i, 0)[0]:.1f}" y="{y0 + 14}" text-anchor="{anchor}" font-size="11">'
            f"{escape(weeks[i])}</text>"
        )
    return _frame(title, body, "week", y_label)
