"""Heatmap -> colour PNG the browser lays over the X-ray (opacity is set on the page)."""

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image


def heatmap_png(heatmap: np.ndarray) -> bytes:
    """A [0, 1] float map -> RGB PNG in the jet colour map, at the map's resolution."""
    rgb = colormaps["jet"](np.clip(heatmap, 0.0, 1.0))[..., :3]
    out = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8), mode="RGB").save(
        out, format="PNG", optimize=False
    )
    return out.getvalue()
